"""The main job end to end on the tiny model: a user's domain from a JSONL file, optimized, evaluated, reported."""

from __future__ import annotations

import json
from typing import Literal

import dspy
import pytest

import ax
from ax.optimizers import GepaSettings, LoraSettings, Preset
from ax.programs import PredictProgram, context_field, label_metric

TINY = Preset(name="tiny", train_size=4, val_size=2, test_items=6, eval_threads=2,
              gepa=GepaSettings(budget=6, num_threads=2, reflection_minibatch_size=2),
              lora=LoraSettings(overrides={"max_steps": 1, "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
                                           "warmup_ratio": 0.0, "dev_fraction": 0.0, "save_steps": 1000},
                                num_threads=2))


class RouteTicket(dspy.Signature):
    """Send an IT ticket to the team that fixes it."""

    context: str = context_field()
    ticket: str = dspy.InputField()
    queue: Literal["network", "hardware", "accounts"] = dspy.OutputField()


class TicketRouter(PredictProgram):
    signature = RouteTicket


@pytest.fixture
def tickets(tmp_path):
    rows = [{"ticket": f"{problem} on floor {i}", "queue": queue} for i in range(8)
            for problem, queue in [("wifi drops", "network"), ("laptop fan is loud", "hardware"),
                                   ("password expired", "accounts")]]
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    domain = ax.register_domain(ax.Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"),
                                          data=path), replace=True)
    return domain


def test_compare_optimizes_evaluates_and_reports_a_users_domain(tiny_model_dir, tickets, tmp_path):
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    lm = Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm()
    files = ax.compare(["tickets"], preset=TINY, run_dir=tmp_path / "run", lm=lm, bootstrap=100, power_simulations=10)
    backend.close()
    report = json.loads(files.json_path.read_text())
    cells = {c["cell"] for c in report["comparisons"][0]["cells"]}
    assert cells == {"baseline", "lora", "gepa", "lora+gepa"}
    assert "ax compare" in files.markdown.read_text()  # the command that reproduces it
    preset_file = tmp_path / "run" / f"preset-{TINY.name}.json"
    assert f"--preset {preset_file}" in files.markdown.read_text()  # a custom preset is rerun from its file
    from ax.optimizers.presets import get_preset
    assert get_preset(str(preset_file)) == TINY
    assert files.html.is_file() and files.manifest.is_file()
    from ax.evals.matrix_store import ResponseStore
    from ax.optimizers.manifest import read_manifest

    store = ResponseStore(tmp_path / "run")
    for config in ("baseline", "lora", "gepa", "combined"):  # each answered the test items with its own playbook
        playbook = read_manifest(tmp_path / "run" / "tickets" / "seed-0" / "configs" / config).playbook
        record = store.read("tickets", f"{config}-s0")
        assert record.configuration.playbook == playbook.path and playbook.bullets >= 1
        assert len(record.cells) == len(tickets.splits().test[:TINY.test_items])
    assert "--no-context" not in files.markdown.read_text()
    # What each arm did, floors and flags, as a reader sees them
    comparison = report["comparisons"][0]
    assert comparison["floors"]["labels"] == ["network", "hardware", "accounts"]
    steps = {r["name"]: r["steps"] for c in comparison["cells"] for r in c["runs"]}
    assert steps["gepa-s0"][0].startswith("gepa: ") and "proposals" in steps["gepa-s0"][0]
    assert steps["lora-s0"][0].startswith("lora: ") and "loss" in steps["lora-s0"][0]
    assert all(s[-1].startswith("ace: playbook of") for s in steps.values())
    markdown = files.markdown.read_text()
    assert "What each arm did" in markdown and "Floors: always answering" in markdown and "macro-F1" in markdown


def test_compare_names_an_unknown_domain_or_a_bad_setting_before_loading_a_model(tickets, tmp_path):
    with pytest.raises(ax.AxError, match="nope"):
        ax.compare(["nope"], run_dir=tmp_path)
    with pytest.raises(ax.AxError, match="n_bootstrap"):
        ax.compare(["tickets"], run_dir=tmp_path, bootstrap=5)
    assert not (tmp_path / "tickets").exists()
