"""`ax ablate` end to end on the tiny model and the toy parity domain: train, score, write, resume."""

from __future__ import annotations

import json

import pytest
import typer
from test_lora_cli import register_toy_domain
from typer.testing import CliRunner

from ax.adapters.cli import ablate_cmd
from ax.experiments.ablate import sweep_settings

app = typer.Typer()
app.command("ablate")(ablate_cmd)
app.command("unused")(lambda: None)  # with two commands typer keeps the command name on the line
runner = CliRunner()


@pytest.fixture
def ablate(tiny_model_dir, tmp_path):
    register_toy_domain()
    config = tmp_path / "lora.yaml"
    config.write_text("lora:\n  per_device_batch_size: 4\n  r: 4\n  learning_rate: 1.0e-3\n")

    def invoke(*args: str):
        return runner.invoke(app, ["ablate", *args, "--config", str(config), "--base-model", str(tiny_model_dir),
                                   "--threads", "2"], terminal_width=200)

    return invoke


def test_a_sweep_trains_scores_writes_and_resumes(ablate, tmp_path):
    out = tmp_path / "sweep"
    common = ["--domain", "lora-toy", "--steps", "2", "--train", "6", "--eval-items", "2", "--out", str(out)]
    first = ablate("weight-decay", *common, "--values", "0.01,0", "--seeds", "0,1")
    assert first.exit_code == 0, first.output
    assert "weight_decay=0.01" in first.output and "weight_decay=0 " in first.output

    result = json.loads((out / "ablation.json").read_text())
    assert [(s["setting"], s["n"]) for s in result["summaries"]] == [("weight_decay=0.01", 2), ("weight_decay=0", 2)]
    assert result["setup"]["train_examples"] == 6 and len(result["setup"]["eval_items"]) == 2
    assert all(0.0 <= r["score"] <= 1.0 for r in result["runs"])
    summary = result["summaries"][0]
    assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
    assert "| weight_decay=0.01 | 2 |" in (out / "ablation.md").read_text()
    adapters = sorted(p for p in (out / "adapters").iterdir() if not p.name.startswith("."))
    assert len(adapters) == 4
    manifest = json.loads((adapters[0] / "ax_manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 2 and manifest["metrics"]["train_examples"] == 6
    answers = [p for p in (out / "responses" / "lora-toy").glob("*.json") if p.name != "items.json"]
    assert len(answers) == 4  # every adapter's dev answers are kept

    # A third seed: the four finished runs are kept as they are, only the new seed trains.
    runs_before = json.loads((out / "runs.json").read_text())
    stamps = {p.name: p.stat().st_mtime_ns for p in adapters}
    second = ablate("weight-decay", *common, "--values", "0.01,0", "--seeds", "0,1,2")
    assert second.exit_code == 0, second.output
    runs_after = json.loads((out / "runs.json").read_text())
    assert runs_after[:4] == runs_before and sorted(r["seed"] for r in runs_after[4:]) == [2, 2]
    assert {p.name: p.stat().st_mtime_ns for p in adapters} == stamps
    assert [s["n"] for s in json.loads((out / "ablation.json").read_text())["summaries"]] == [3, 3]

    # Another budget in the same folder would average incomparable scores: refused, naming the change.
    changed = ablate("weight-decay", *common, "--steps", "3", "--values", "0", "--seeds", "0")
    assert changed.exit_code == 1 and "config.max_steps: 2 -> 3" in changed.output


def test_rank_and_target_sweeps_run(ablate, tmp_path):
    for kind, values, expected in (("rank", "2,4", "r=2"), ("target-modules", "attention,q_proj+v_proj", "targets=q_proj+v_proj")):
        result = ablate(kind, "--domain", "lora-toy", "--steps", "1", "--train", "4", "--eval-items", "1",
                        "--seeds", "0", "--values", values, "--out", str(tmp_path / kind))
        assert result.exit_code == 0, result.output
        assert expected in result.output
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "target-modules" / "adapters").glob("*/ax_manifest.json")]
    assert sorted(m["config"]["target_modules"] for m in manifests) == [
        ["q_proj", "k_proj", "v_proj", "o_proj"], ["q_proj", "v_proj"]]


@pytest.mark.parametrize("args, message", [
    (["rank", "--seeds", "0,x"], "--seeds '0,x'"),
    (["rank", "--seeds", "1,1"], "each once"),
    (["rank", "--values", "4,big"], "--values '4,big': a rank sweep takes comma-separated integers"),
    (["rank", "--values", "0"], "r = 0"),
    (["weight-decay", "--values", "-1"], "weight_decay = -1.0"),
    (["target-modules", "--values", "attention,q_proj+atention"], "module(s) ['atention']"),
    (["rank", "--steps", "0"], "--steps 0: must be at least 1"),
    (["rank", "--eval-items", "5"], "--eval-items 5: domain 'lora-toy' has only 2 dev items"),
    (["rank", "--train", "50"], "--train 50: domain 'lora-toy' has only 8 training examples"),
])
def test_bad_input_names_the_option_and_value(ablate, tmp_path, args, message):
    result = ablate(*args, "--domain", "lora-toy", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_an_unknown_kind_is_refused_by_the_parser(ablate):
    result = ablate("dropout", "--domain", "lora-toy")
    assert result.exit_code == 2 and "dropout" in result.output
    assert [s.name for s in sweep_settings("target-modules")] == ["targets=attention", "targets=mlp", "targets=all"]
