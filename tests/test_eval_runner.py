"""The runner on real programs: the tiny model answers a real domain's items; re-runs ask the model nothing."""

from __future__ import annotations

import numpy as np
import pytest

from ax.configuration import Configuration
from ax.errors import AxError
from ax.evals.matrix_store import Cell, RespondentRecord, ResponseStore, item_record
from ax.evals.runner import domain_items, evaluate_configurations


@pytest.fixture
def short_client(tiny_model_dir):
    """The tiny model with short answers: its outputs are noise, and prompt length already dominates."""
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    yield Client(backend, model_name="tiny", cache=False, max_field_tokens=4)
    backend.close()


@pytest.fixture(scope="module")
def healthcare():
    """One three-way label per item and short inputs: the cheapest real domain to run on a CPU."""
    from ax.programs import get_domain

    return get_domain("healthcare")


@pytest.fixture(scope="module")
def legal():
    from ax.programs import get_domain

    return get_domain("legal")


def test_runner_stores_the_matrix_and_reruns_incrementally(short_client, tiny_adapters, healthcare, tmp_path):
    lm = short_client.lm(max_tokens=8)
    configurations = [
        Configuration(name="base", domain="healthcare", lora=False, gepa=False),
        Configuration(name="alpha", domain="healthcare", lora=True, gepa=False, adapter=tiny_adapters["alpha"]),
    ]
    store = ResponseStore(tmp_path, create=True)
    items = domain_items(healthcare, limit=10)
    first = evaluate_configurations(configurations, healthcare, lm=lm, store=store, items=items, num_threads=8,
                                    command="ax evaluate --domain healthcare")
    calls = lm.usage_summary()["calls"]
    assert first.new_cells == {"base": 10, "alpha": 10} and calls >= 20
    assert lm.usage_summary()["per_adapter"].keys() >= {"base"}

    matrix = ResponseStore(tmp_path).matrix("healthcare")
    assert matrix.correct.shape == (2, 10) and set(np.unique(matrix.correct)) <= {0.0, 1.0}
    record = store.read("healthcare", "alpha")
    assert record.adapter_fingerprint and record.commands == ["ax evaluate --domain healthcare"]
    assert all(cell.output or cell.error for cell in record.cells)
    assert all(cell.correct == (cell.score >= 1.0) for cell in record.cells)

    again = evaluate_configurations(configurations, healthcare, lm=lm, store=store, items=items)
    assert again.new_cells == {"base": 0, "alpha": 0} and again.stored_cells == {"base": 10, "alpha": 10}
    assert lm.usage_summary()["calls"] == calls, "stored cells must not reach the model again"

    more = evaluate_configurations(configurations[:1], healthcare, lm=lm, store=store,
                                   items=domain_items(healthcare, limit=11))
    assert more.new_cells == {"base": 1}
    assert ResponseStore(tmp_path).matrix("healthcare").correct.shape == (2, 11)

    changed = configurations[0].model_copy(update={"instructions": {"predict": "Answer tersely."}})
    with pytest.raises(AxError, match="base.json holds answers of another configuration"):
        evaluate_configurations([changed], healthcare, lm=lm, store=store, items=items)


def test_a_respondent_identical_to_another_takes_its_answers(short_client, tiny_adapters, healthcare, tmp_path):
    """Two names for one arm (the same program, adapter weights, playbook and model, as when GEPA changed
    nothing): one answers, the other takes its cells, and a rerun of a half-answered twin fills it too."""
    lm = short_client.lm(max_tokens=8)
    configurations = [
        Configuration(name="lora", domain="healthcare", lora=True, gepa=False, adapter=tiny_adapters["alpha"]),
        Configuration(name="lora+gepa", domain="healthcare", lora=True, gepa=True, adapter=tiny_adapters["alpha"]),
        Configuration(name="base", domain="healthcare", lora=False, gepa=False),
    ]
    store = ResponseStore(tmp_path, create=True)
    items = domain_items(healthcare, limit=6)
    def adapted() -> int:
        return sum(n for name, n in lm.usage_summary()["per_adapter"].items() if name != "base")

    evaluate_configurations(configurations[:1], healthcare, lm=lm, store=store, items=items[:4])
    first = adapted()  # the calls of 4 answers
    summary = evaluate_configurations(configurations, healthcare, lm=lm, store=store, items=items, num_threads=4)
    assert summary.new_cells == {"lora": 2, "lora+gepa": 6, "base": 6}
    assert summary.copied_from == {"lora+gepa": "lora"}
    assert adapted() - first == first // 2  # only lora's 2 new items reached the adapter
    twin, origin = store.read("healthcare", "lora+gepa"), store.read("healthcare", "lora")
    assert [c.model_dump() for c in twin.cells] == [c.model_dump() for c in origin.cells]
    assert twin.identity == origin.identity


def test_adaptive_evaluation_asks_only_for_the_items_it_picks(legal, tmp_path):
    """A scripted LM right on a known half of the items, scored on a pool calibrated from synthetic respondents."""
    import dspy
    from dspy.utils.dummies import DummyLM

    from ax.evals.adaptive_eval import AdaptivePlan, adaptive_evaluate

    items = domain_items(legal, limit=40)
    store = ResponseStore(tmp_path, create=True)
    store.register_items("legal", [item_record(e) for e in items])
    rng = np.random.default_rng(0)
    difficulty = np.linspace(-2, 2, len(items))
    for k, theta in enumerate(rng.normal(0, 1, 30)):
        correct = rng.random(len(items)) < 1 / (1 + np.exp(-(theta - difficulty)))
        store.write(RespondentRecord(
            configuration=Configuration(name=f"cand-{k}", domain="legal", lora=False, gepa=True, role="calibration"),
            identity="synthetic", model="m", model_fingerprint="fp",
            cells=[Cell(item=str(e.id), score=float(ok), correct=bool(ok)) for e, ok in zip(items, correct)]))
    right = {str(e.id) for e in items[::2]}
    answers = {e.clause: {"clause_type": e.clause_type if str(e.id) in right else "warranty",
                          "obligated_party": e.obligated_party if str(e.id) in right else "nobody"} for e in items}
    lm = DummyLM(answers)
    configuration = Configuration(name="new", domain="legal", lora=False, gepa=True)
    with dspy.context(adapter=dspy.ChatAdapter()):
        [result] = adaptive_evaluate([configuration], legal, lm=lm, store=store, max_items=10,
                                     target_standard_error=1e-9, plan=AdaptivePlan(method="irt"))
    estimate = result.estimate
    assert len(estimate.items) == result.new_answers == 10 and estimate.pool_items == estimate.calibrated_items == 40
    assert estimate.calibrated_on == 30
    assert 0.0 < estimate.accuracy < 1.0 and np.isfinite(estimate.theta_standard_error)
    stored = store.read("legal", "new")
    assert len(stored.cells) == 10 and all(cell.correct == (cell.item in right) for cell in stored.cells)
    assert stored.adaptive == estimate
    # the defaults (those of `ax evaluate --adaptive`): a quarter of the 40 items, far above the
    # accuracy-SE target, so the same 10 items, all already stored
    [again] = adaptive_evaluate([configuration], legal, lm=lm, store=store, plan=AdaptivePlan(method="irt"))
    assert len(again.estimate.items) == 10 and again.estimate.stop_reason == "max_items" and again.new_answers == 0
    assert again.estimate.theta == pytest.approx(estimate.theta) and again.estimate.accuracy_standard_error > 0.025
    # the unasked 30 items' own chance: the part of the error no estimator removes
    assert 0 < again.estimate.sampling_floor < again.estimate.accuracy_standard_error


def test_evaluate_command_stores_answers_and_skips_them_on_rerun(tiny_model_dir, tmp_path, monkeypatch):
    import json

    import typer
    from typer.testing import CliRunner

    from ax.evals.cli import evaluate_cmd

    monkeypatch.setenv("AX_NO_CACHE", "1")
    (tmp_path / "configurations.json").write_text(json.dumps({"configurations": [
        {"name": "base", "domain": "healthcare", "lora": False, "gepa": False}]}))
    app = typer.Typer()
    app.command()(evaluate_cmd)
    arguments = ["--domain", "healthcare", "--run-dir", str(tmp_path), "--model", str(tiny_model_dir), "--limit", "3"]
    first = CliRunner().invoke(app, arguments)
    assert first.exit_code == 0, first.output
    assert "base: 3 new answers, 0 already stored" in first.output
    record = ResponseStore(tmp_path).read("healthcare", "base")
    assert len(record.cells) == 3 and record.commands[0].startswith("ax evaluate --domain healthcare --run-dir ")
    second = CliRunner().invoke(app, arguments)
    assert "base: 0 new answers, 3 already stored" in second.output and "0 LM calls" in second.output
