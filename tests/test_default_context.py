"""Every configuration answers with an ACE playbook of its own by default; `--no-context` gives none."""

from __future__ import annotations

import json

import dspy
import pytest
import typer
from typer.testing import CliRunner

import ax
from ax.configuration import load_configurations
from ax.context import Playbook, WithContext
from ax.context.tokens import token_counter
from ax.optimizers.configurations import optimize
from ax.optimizers.presets import preset_argument
from test_optimize_run import TINY, tiny_domain, tiny_lm  # noqa: F401  (tiny_lm is a fixture)

PRESET = TINY.model_copy(update={"ace_train_size": 3, "test_items": 4, "eval_threads": 2})
LAST_STAGES = {"baseline": "ace", "lora": "lora-ace", "gepa": "gepa-ace", "combined": "gepa-lora-ace"}


def test_each_configuration_adapts_its_playbook_last_with_its_own_program_and_adapter(tiny_lm, tmp_path):
    domain = tiny_domain()
    manifests = optimize(domain, seeds=[0], preset=PRESET, run_dir=tmp_path, lm=tiny_lm, show_progress=False)
    by_config = {m.config: m for m in manifests}
    assert {c: m.strategy for c, m in by_config.items()} == {
        "baseline": "ace", "lora": "lora->ace", "gepa": "gepa->ace", "combined": "gepa->lora->ace"}
    seed_dir = tmp_path / "tinysent" / "seed-0"
    count_tokens = token_counter(tiny_lm.client.tokenizer)
    for config, manifest in by_config.items():
        ace = manifest.steps[-1]
        assert ace.step == "ace" and ace.stage_dir == (seed_dir / "stages" / LAST_STAGES[config]).resolve()
        assert ace.summary["train_items"] == 3
        if ace.summary.get("copied_from"):  # GEPA accepted nothing: the playbook ACE adapted without it
            assert (config, ace.summary["copied_from"]) in {("gepa", "ace"), ("combined", "lora-ace")}
            assert manifest.steps[0].summary["accepted"] == 0 and ace.cost.lm_calls == 0
        else:
            assert ace.cost.rollouts == 3  # the preset's ACE subset, one epoch
            assert ace.cost.reflection_calls >= 1 and ace.cost.lm_calls > ace.cost.reflection_calls
        assert manifest.total_cost.reflection_calls >= ace.cost.reflection_calls
        named = json.loads((seed_dir / "configs" / config / "manifest.json").read_text())["playbook"]
        assert not named["path"].startswith("/") and manifest.playbook.path.is_relative_to(ace.stage_dir)
        playbook = Playbook.model_validate_json(manifest.playbook.path.read_text())
        assert named["bullets"] == len(playbook.bullets) == ace.summary["bullets"] >= 1
        assert named["tokens"] == count_tokens(playbook.render()) > 0
    assert len({m.playbook.path for m in manifests}) == 4  # one playbook per configuration
    baseline, lora, gepa, combined = (by_config[c] for c in ("baseline", "lora", "gepa", "combined"))
    assert combined.steps[0] == gepa.steps[0]  # the shared prefix ran once
    assert lora.adapter is not None and combined.adapter is not None and baseline.adapter is gepa.adapter is None
    # The adapters answered only while their configurations' playbooks were adapted (nothing was evaluated).
    answered = tiny_lm.client.usage.totals().per_adapter
    assert answered[lora.adapter.name] >= 3
    assert combined.steps[-1].summary.get("copied_from") or answered[combined.adapter.name] >= 3
    # GEPA's playbook was adapted on the GEPA-optimized program, which the configuration keeps.
    gepa_program = json.loads((gepa.steps[0].stage_dir / "program.json").read_text())
    assert json.loads(gepa.program_file.read_text())["predict"]["signature"] == gepa_program["predict"]["signature"]

    respondents = {c.name: c for c in load_configurations(tmp_path / "configurations.json").configurations
                   if c.role == "comparison"}
    assert {name: c.cell for name, c in respondents.items()} == {
        "baseline-s0": "baseline", "lora-s0": "lora", "gepa-s0": "gepa", "combined-s0": "lora+gepa"}
    for config, manifest in by_config.items():
        respondent = respondents[f"{config}-s0"]
        assert respondent.playbook == manifest.playbook.path
        program, _ = respondent.build(domain, tiny_lm)
        assert isinstance(program, WithContext) and len(program.assembler.playbook.bullets) == manifest.playbook.bullets
        with dspy.context(lm=tiny_lm):
            _, assembled = program.run(review="The product was great.")
        assert set(assembled.bullet_ids) == {b.id for b in program.assembler.playbook.bullets}

    calls = tiny_lm.client.usage.totals().calls
    again = optimize(domain, configs=["combined"], seeds=[0], preset=PRESET, run_dir=tmp_path, lm=tiny_lm,
                     show_progress=False)
    assert again[0].playbook == combined.playbook and again[0].steps == combined.steps  # reused, not readapted
    assert tiny_lm.client.usage.totals().calls == calls


@pytest.fixture
def registered(tmp_path, monkeypatch, tiny_lm):
    """The tiny domain registered by name and `ax.LM` answering with the tiny model, as the CLI needs."""
    domain = ax.register_domain(tiny_domain(), replace=True)
    monkeypatch.setattr(ax, "LM", lambda model=None, **_: tiny_lm, raising=False)
    return domain, preset_argument(PRESET, tmp_path)


def test_optimize_no_context_gives_the_configurations_no_playbook(registered, tiny_lm, tmp_path):
    from ax.optimizers.cli import optimize_cmd

    _, preset = registered
    app = typer.Typer()
    app.command()(optimize_cmd)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["--domain", "tinysent", "--preset", preset, "--run-dir", str(run),
                                      "--no-context"])
    assert result.exit_code == 0, result.output
    configs = run / "tinysent" / "seed-0" / "configs"
    manifests = {p.parent.name: json.loads(p.read_text()) for p in configs.glob("*/manifest.json")}
    assert {c: m["strategy"] for c, m in manifests.items()} == {"baseline": "", "lora": "lora", "gepa": "gepa",
                                                              "combined": "gepa->lora"}
    assert all(m["playbook"] is None for m in manifests.values())
    assert all(c.playbook is None for c in load_configurations(run / "configurations.json").configurations)
    assert not list((run / "tinysent" / "seed-0" / "stages").glob("*ace*"))
    assert set(tiny_lm.client.usage.totals().per_adapter) == {"base"}  # no adapter answered: nothing adapted a playbook


def compare_cli(preset: str, run, *flags: str):
    """`ax compare` on the registered tiny domain, which must exit 0."""
    from ax.cli import app

    result = CliRunner().invoke(app, ["compare", "--domain", "tinysent", "--preset", preset, "--run-dir", str(run),
                                      *flags])
    assert result.exit_code == 0, result.output


def test_compare_no_context_evaluates_the_configurations_without_a_playbook(registered, tmp_path):
    from ax.evals.matrix_store import ResponseStore

    run = tmp_path / "run"
    compare_cli(registered[1], run, "--no-context")
    store = ResponseStore(run)
    for config in ("baseline", "lora", "gepa", "combined"):
        record = store.read("tinysent", f"{config}-s0")
        assert record.configuration.playbook is None and len(record.cells) == 4
        assert record.commands[0].endswith("--no-context")  # the reproducing command keeps the flag


def test_compare_ablate_context_measures_each_playbook_against_the_same_arm_without_it(registered, tmp_path):
    run = tmp_path / "run"
    compare_cli(registered[1], run, "--ablate-context")
    seed_dir = run / "tinysent" / "seed-0"
    manifests = {p.parent.name: json.loads(p.read_text()) for p in (seed_dir / "configs").glob("*/manifest.json")}
    for config, strategy in {"baseline": "", "lora": "lora", "gepa": "gepa", "combined": "gepa->lora"}.items():
        twin, full = manifests[f"{config}-no-playbook"], manifests[config]
        assert twin["strategy"] == strategy and twin["playbook"] is None and twin["without_playbook_of"] == config
        assert full["without_playbook_of"] is None and full["playbook"] is not None
        assert twin["adapter"] == full["adapter"]  # the same adapter: nothing was trained twice
    assert sorted(p.name for p in (seed_dir / "stages").iterdir()) == sorted(
        ["baseline", "ace", "lora", "lora-ace", "gepa", "gepa-ace", "gepa-lora", "gepa-lora-ace"])
    twins = {c.name: c for c in load_configurations(run / "configurations.json").configurations if c.without_playbook_of}
    assert {n: (c.role, c.without_playbook_of) for n, c in twins.items()} == {
        f"{c}-no-playbook-s0": ("calibration", f"{c}-s0") for c in ("baseline", "lora", "gepa", "combined")}
    report = json.loads((run / "report" / "report.json").read_text())
    rows = report["comparisons"][0]["playbook"]
    assert [r["cell"] for r in rows] == ["baseline", "lora", "gepa", "lora+gepa"]
    assert all((r["difference"] is None) != (r["not_measured"] is None) for r in rows)
    assert "Playbook on vs off" in (run / "report" / "report.md").read_text()


def test_ablate_context_needs_context():
    from ax.errors import AxError
    from ax.optimizers.configurations import config_strategies

    with pytest.raises(AxError, match="needs context=True"):
        config_strategies(["baseline"], context=False, ablate_context=True)
