"""`ax compare --adaptive`: comparison configurations answer only the items adaptive tests pick, side by side,
and the report gives their forecasts with errors; too small a pool falls back to every item, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import ax
from ax.configuration import Configuration
from ax.evals.adaptive_eval import adaptive_plan
from ax.evals.matrix_store import Cell, RespondentRecord, ResponseMatrix, ResponseStore, item_record
from ax.evals.runner import task_info
from ax.programs import label_metric
from test_pipeline import TicketRouter  # the same user program, over a bigger data set


@pytest.fixture
def queues(tmp_path):
    """A user's domain with a test split of 200+ items (1,000 rows; the default split keeps a fifth for test)."""
    problems = [("wifi drops", "network"), ("fan is loud", "hardware"), ("password expired", "accounts")]
    rows = [{"ticket": f"{problem} in room {i}", "queue": queue} for i in range(334) for problem, queue in problems]
    path = tmp_path / "queues.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:1000]))
    return ax.register_domain(ax.Domain(name="queues", program=TicketRouter, metric=label_metric("queue"), data=path),
                              replace=True)


def _calibration_pool(store: ResponseStore, domain, respondents: int, seed: int = 0) -> list[str]:
    """`respondents` variants that answered every test item (Rasch answers), as GEPA candidates leave them."""
    test = list(domain.splits().test)
    store.register_items(domain.name, [item_record(e, labels=domain.labels(), split="test") for e in test],
                         task_info(domain))
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, len(test))
    for k, theta in enumerate(rng.normal(0, 1, respondents)):
        correct = rng.random(len(test)) < 1 / (1 + np.exp(-(theta - difficulty)))
        store.write(RespondentRecord(
            configuration=Configuration(name=f"cand-{k}", domain=domain.name, lora=False, gepa=True, role="calibration"),
            identity=f"synthetic-{k}", model="m", model_fingerprint="fp",
            cells=[Cell(item=str(e.id), score=float(ok), correct=bool(ok), output={"queue": e.queue if ok else "x"})
                   for e, ok in zip(test, correct)]))
    return [str(e.id) for e in test]


def test_compare_adaptive_answers_the_picked_items_and_the_report_says_what_they_are(queues, tiny_model_dir, tmp_path,
                                                                                    capsys):
    from ax.client import Client
    from ax.evals.render import write_report
    from ax.evals.report import ReportSettings, build_report
    from ax.inference.local import LocalBackend
    from ax.model import load_model
    from ax.pipeline import _Answering, _compare_adaptively

    run_dir = tmp_path / "run"
    store = ResponseStore(run_dir, create=True)
    items = _calibration_pool(store, queues, respondents=60)
    assert len(items) >= 200
    tested = [Configuration(name="baseline-s0", domain="queues", lora=False, gepa=False),
              Configuration(name="gepa-s0", domain="queues", lora=False, gepa=True,
                            instructions={"predict": "Name the team: network, hardware or accounts."})]
    # a comparison run of an earlier full comparison: left as it is, and it calibrates too
    earlier = store.read("queues", "cand-0").model_copy(update={"configuration": Configuration(
        name="baseline-s1", domain="queues", lora=False, gepa=False, seed=1)})
    store.write(earlier)
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    lm = Client(backend, model_name="tiny", cache=False, max_field_tokens=4).lm()
    options = dict(split="test", limit=None, num_threads=4, command="ax compare --domain queues --adaptive")
    try:
        new = _compare_adaptively([*tested, earlier.configuration], _Answering(
            task=queues, run_dir=run_dir, lm=lm, model=None, dtype=None, workers=1, options=options,
            console=Console(stderr=True)))
    finally:
        backend.close()
    records = [store.read("queues", c.name) for c in tested]
    assert new == sum(len(r.cells) for r in records)
    printed = capsys.readouterr().err
    assert "baseline-s0: " in printed and "majority floor 33.5%" in printed  # every accuracy beside its floor
    for record in records:
        estimate = record.adaptive
        # items every respondent got right (or wrong) would tell nothing: not calibrated, they count as before
        assert estimate is not None and estimate.calibrated_on == 61 and estimate.pool_items == len(items)
        assert 0 < estimate.held_out_error < 0.06 and estimate.method in ("irt", "sampled")  # the pool's replays
        assert 0.9 * len(items) < estimate.calibrated_items <= len(items)
        assert 1 <= len(estimate.items) <= estimate.calibrated_items // 4 and estimate.items == [c.item for c in record.cells]
        assert 0 < estimate.accuracy < 1 and 0 < estimate.sampling_floor < estimate.accuracy_standard_error
        assert record.commands == [options["command"]]

    assert store.read("queues", "baseline-s1") == earlier

    report = build_report(run_dir, ReportSettings(n_bootstrap=100, power_simulations=10))
    comparison = report.comparisons[0]
    assert [r.name for r in comparison.adaptive] == ["baseline-s0", "gepa-s0"] and not comparison.excluded
    assert [c.cell for c in comparison.cells] == ["baseline"]  # the full run; forecasts are not tested against it
    assert not comparison.pairwise
    assert any("scored adaptively" in s and "not measured" in s for s in comparison.verdict.sentences)
    assert any("scored adaptively" in line for line in report.summary)
    run = comparison.adaptive[0]
    assert run.accuracy.low <= run.accuracy.estimate <= run.accuracy.high
    markdown = write_report(report, run_dir / "report").markdown.read_text()
    assert "Scored adaptively" in markdown and "sampling floor" in markdown and "adaptive estimate, 1 run(s)" in markdown


def _matrix(n_items: int, respondents: int, *, rasch: bool = True, seed: int = 0) -> ResponseMatrix:
    """Answers with an item structure (Rasch) or without one (every answer right with chance 0.6)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 1, (respondents, 1)) - rng.normal(0, 1, n_items) if rasch else np.log(1.5)
    correct = (rng.random((respondents, n_items)) < 1 / (1 + np.exp(-logit))).astype(float)
    return ResponseMatrix("d", tuple(Configuration(name=f"r{k}", domain="d", lora=False, gepa=True, role="calibration")
                                     for k in range(respondents)), tuple(f"i{j}" for j in range(n_items)),
                          correct, correct.copy())


def test_adaptive_compare_refuses_small_pools_with_the_sampling_floor_and_few_respondents_by_count():
    small = adaptive_plan(_matrix(72, 30), tested=[]).reason
    assert "72 items, under 200" in small and "sampling floor" in small
    floor = float(small.split("about ")[1].split(" ")[0])
    assert 3.0 < floor < 4.5  # about 0.8 * sqrt(54 * 0.2) / 72
    few = adaptive_plan(_matrix(400, 12), tested=["r0", "r1", "r2"]).reason
    assert few.startswith("only 9 respondent(s)")
    rasch = adaptive_plan(_matrix(400, 31), tested=["r0"])
    assert rasch.reason is None and set(rasch.errors) == {"irt", "sampled"}
    assert rasch.held_out_error == min(rasch.errors.values()) < rasch.random_items_error
    # no item structure and no respondent like another: nothing predicts, so no test beats random items
    noise = adaptive_plan(_matrix(400, 31, rasch=False), tested=["r0"])
    assert "as many random items would miss" in noise.reason


def test_sampling_recovers_a_copy_of_a_pool_respondent_from_few_items():
    """A configuration that answers like one pool respondent (a deterministic arm run again) is predicted by it."""
    from ax.evals.sampled import item_order, neighbour_estimate, run_sampled_test

    matrix = _matrix(400, 31)
    pool, row = matrix.correct[1:], matrix.correct[5]  # row 5 is pool row 4: a copy
    test = run_sampled_test(lambda j: int(row[j]), pool, item_order(400, "copy"), target_standard_error=0.02)
    assert test.stop_reason == "standard_error" and len(test.items) == 30
    assert abs(test.estimate.accuracy - row.mean()) < 0.01 and test.estimate.standard_error < 0.01
    # a respondent unlike any: the estimate is the sample's, with an honest SE
    other = _matrix(400, 1, seed=9).correct[0]
    asked = item_order(400, "other")[:100]
    estimate = neighbour_estimate(asked, other[asked], pool)
    assert abs(estimate.accuracy - other.mean()) < 3 * estimate.standard_error + 0.01


def test_compare_adaptive_falls_back_to_every_item_when_the_preset_limits_them(queues, tmp_path, capsys):
    from ax.pipeline import _Answering, _compare_adaptively

    answered = []

    def fake_answer(group, how):  # the full-answering path, recorded instead of run
        answered.append([c.name for c in group])
        return 0

    import ax.pipeline as pipeline

    original = pipeline._answer_every_item
    pipeline._answer_every_item = fake_answer
    try:
        _compare_adaptively([Configuration(name="baseline-s0", domain="queues", lora=False, gepa=False)],
                            _Answering(task=queues, run_dir=tmp_path, lm=None, model=None, dtype=None, workers=1,
                                       options=dict(limit=6, command="c"), console=Console(stderr=True)))
    finally:
        pipeline._answer_every_item = original
    assert answered == [["baseline-s0"]]
    assert "Not adaptive: the preset answers only the first 6 test items" in capsys.readouterr().err


def test_compare_command_records_adaptive(tmp_path):
    from ax.pipeline import compare_command

    assert compare_command(["queues"], "quick", [0], None, tmp_path, None, adaptive=True).endswith("--adaptive")
    assert "--adaptive" not in compare_command(["queues"], "quick", [0], None, Path("r"), None)


def test_evaluate_adaptive_command_prints_each_estimate_beside_its_floor_and_replay_error(queues, tiny_model_dir,
                                                                                         tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from ax.evals.cli import evaluate_cmd

    monkeypatch.setenv("AX_NO_CACHE", "1")
    store = ResponseStore(tmp_path, create=True)
    _calibration_pool(store, queues, respondents=60)
    (tmp_path / "configurations.json").write_text(json.dumps({"configurations": [
        {"name": "new-s0", "domain": "queues", "lora": False, "gepa": False}]}))
    app = typer.Typer()
    app.command()(evaluate_cmd)
    result = CliRunner().invoke(app, ["--domain", "queues", "--run-dir", str(tmp_path), "--model", str(tiny_model_dir),
                                      "--adaptive", "--only", "new-s0"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("new-s0: predicted accuracy"))
    assert "(majority floor 33.5%)" in line and "replayed on the pool it missed by" in line
    record = store.read("queues", "new-s0")
    assert record.adaptive is not None and len(record.cells) == len(record.adaptive.items) < 200
    assert record.commands == [f"ax evaluate --domain queues --run-dir {tmp_path} --model {tiny_model_dir} "
                               "--split test --only new-s0 --adaptive"]


def test_sampling_where_the_pool_agrees_on_every_unasked_item_has_no_negative_variance():
    """Every pool respondent right on the items not asked: predictions of 1 (give or take rounding) leave
    the unasked items no chance to differ, not a math error."""
    from ax.evals.sampled import neighbour_estimate

    rng = np.random.default_rng(0)
    pool = np.ones((7, 40))
    pool[:, :10] = rng.random((7, 10)) < 0.5
    estimate = neighbour_estimate(np.arange(10), pool[3, :10], pool)
    assert estimate.unasked_standard_error == 0.0 and 0 < estimate.accuracy <= 1


def test_a_run_stopped_early_is_replayed_on_the_items_every_respondent_answered():
    matrix = _matrix(8, 3)
    correct = matrix.correct.copy()
    correct[0, 6:] = np.nan  # the first respondent stopped two items early, the second one item
    correct[1, 7] = np.nan
    stopped = ResponseMatrix("d", matrix.respondents, matrix.item_ids, correct, correct.copy(),
                             outputs=tuple({f"i{j}": {"a": j} for j in range(8)} for _ in range(3)),
                             gold={f"i{j}": {"a": j} for j in range(8)})
    common = stopped.answered_by_all()
    assert common.item_ids == tuple(f"i{j}" for j in range(6)) and common.complete().all()
    assert np.array_equal(common.correct, correct[:, :6]) and set(common.gold) == set(common.outputs[2]) == set(common.item_ids)
