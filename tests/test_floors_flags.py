"""Floors, per-class truth and flags in the comparison report, from hand-made response stores (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from ax.configuration import Configuration, StepInfo
from ax.evals.classification import class_metrics, macro_f1_replicates
from ax.evals.matrix_store import Cell, ItemRecord, RespondentRecord, ResponseStore, TaskInfo
from ax.evals.render import to_markdown, write_report
from ax.evals.report import ReportSettings, build_report

SETTINGS = ReportSettings(n_bootstrap=200, seed=1, power_simulations=10)
LABELS = ["positive", "neutral", "negative"]
# One block of ten items: 60% neutral, 30% positive, 10% negative; the fixture repeats it five times.
BLOCK_GOLD = ["neutral"] * 6 + ["positive"] * 3 + ["negative"]
# A hand-checked answer block: neutral 4/6 right, positive 2/3, negative 1/1, one unparseable answer.
BLOCK_GOOD = ["neutral"] * 4 + ["positive", "off-label", "positive", "positive", "neutral", "negative"]
CELLS = {"baseline": (False, False), "lora": (True, False), "gepa": (False, True), "lora+gepa": (True, True)}


def sentiment_store(run_dir, answers: dict[str, list[str]], *, identities: dict[str, str] | None = None,
                    steps: dict[str, tuple[StepInfo, ...]] | None = None, seeds=(0,),
                    step_scores=lambda j, correct: {}) -> ResponseStore:
    """A classification domain of 50 items (majority 60%) answered by the four cells, one run per seed.

    `step_scores(item index, correct)`: the per-step scores a multi-step program's answer carries."""
    store = ResponseStore(run_dir, create=True)
    gold = BLOCK_GOLD * 5
    ids = [f"sent-{j:03d}" for j in range(len(gold))]
    store.register_items("sent", [ItemRecord(id=i, digest=f"{j:016d}", split="test", gold={"label": g})
                                  for j, (i, g) in enumerate(zip(ids, gold))],
                         TaskInfo(task="classification", label_fields=["label"], labels=LABELS))
    for cell, (lora, gepa) in CELLS.items():
        for seed in seeds:
            name = f"{cell.replace('+', '-')}-s{seed}"
            configuration = Configuration(name=name, domain="sent", lora=lora, gepa=gepa, seed=seed,
                                          adapter=f"adapters/{name}" if lora else None,
                                          steps=(steps or {}).get(cell, ()))
            said = answers[cell]
            store.write(RespondentRecord(
                configuration=configuration, identity=(identities or {}).get(cell, f"id-{name}"), model="tiny",
                model_fingerprint="f" * 16, commands=["ax evaluate --domain sent"],
                cells=[Cell(item=i, score=float(a == g), correct=a == g, output={"label": a},
                            steps=step_scores(j, a == g)) for j, (i, a, g) in enumerate(zip(ids, said, gold))]))
    return store


def test_per_class_metrics_have_exact_values_on_a_hand_made_matrix():
    constant = class_metrics(BLOCK_GOLD, ["neutral"] * 10, LABELS)
    assert constant.accuracy == pytest.approx(0.6)
    assert constant.macro_f1 == pytest.approx(0.75 / 3)  # F1(neutral) = 2*6/(10+6) = 0.75, the others 0
    assert constant.balanced_accuracy == pytest.approx(1 / 3)
    assert constant.top_answer == "neutral" and constant.top_share == 1.0
    good = class_metrics(BLOCK_GOLD, BLOCK_GOOD, LABELS)
    assert good.accuracy == pytest.approx(0.7)
    assert good.macro_f1 == pytest.approx((8 / 11 + 2 / 3 + 1) / 3)
    assert good.balanced_accuracy == pytest.approx((4 / 6 + 2 / 3 + 1) / 3)
    assert good.recall == pytest.approx({"positive": 2 / 3, "neutral": 4 / 6, "negative": 1.0})
    assert good.predictions == {"positive": 3, "neutral": 5, "negative": 1, "(other)": 1}
    assert good.confusion == [[2, 1, 0, 0], [1, 4, 0, 1], [0, 0, 1, 0]]


def test_bootstrap_macro_f1_centres_on_sklearns():
    rng = np.random.default_rng(0)
    gold = list(rng.choice(LABELS, size=600, p=[0.3, 0.6, 0.1]))
    said = [g if rng.random() < 0.7 else rng.choice(LABELS) for g in gold]
    replicates = macro_f1_replicates(gold, {"x": [said]}, LABELS, n_bootstrap=400, seed=0)["x"]
    assert np.median(replicates) == pytest.approx(f1_score(gold, said, average="macro"), abs=0.01)


def test_a_constant_answer_is_flagged_degenerate_and_floors_are_exact(tmp_path):
    answers = {"baseline": ["neutral"] * 50, "lora": BLOCK_GOOD * 5, "gepa": BLOCK_GOOD[::-1] * 5,
               "lora+gepa": BLOCK_GOLD * 5}
    sentiment_store(tmp_path, answers)
    report = build_report(tmp_path, SETTINGS)
    comparison = report.comparisons[0]
    floors = comparison.floors
    assert (floors.majority_answer, floors.majority, floors.chance) == ("neutral", pytest.approx(0.6), pytest.approx(1 / 3))
    cells = {c.cell: c for c in comparison.cells}
    assert "degenerate" in cells["baseline"].flags
    assert any("'neutral' for 100%" in reason for reason in cells["baseline"].flag_reasons)
    assert cells["baseline"].classes.macro_f1 == pytest.approx(0.25)
    assert "degenerate" not in cells["lora+gepa"].flags and cells["lora+gepa"].classes.macro_f1 == 1.0
    assert comparison.verdict.sentences[0].startswith("Floors: always answering 'neutral' scores 60.0%")
    assert "baseline degenerate" in report.summary[0] and "majority floor 60.0%" in report.summary[0]
    contrasts = {x.contrast: x for x in comparison.class_contrasts}
    assert contrasts["lora+gepa - baseline"].macro_f1.estimate == pytest.approx(0.75)
    assert contrasts["synergy"].macro_f1 is not None
    markdown = to_markdown(report)
    assert "macro-F1" in markdown and "Confusion matrix, baseline" in markdown


def test_identical_arms_are_named_and_give_no_synergy_number(tmp_path):
    answers = {"baseline": BLOCK_GOOD * 5, "lora": BLOCK_GOLD * 5, "gepa": BLOCK_GOOD * 5, "lora+gepa": BLOCK_GOLD * 5}
    sentiment_store(tmp_path, answers, identities={"baseline": "same-b", "gepa": "same-b", "lora": "same-l",
                                                   "lora+gepa": "same-l"})
    report = build_report(tmp_path, SETTINGS)
    comparison = report.comparisons[0]
    cells = {c.cell: c for c in comparison.cells}
    assert "identical_to:baseline" in cells["gepa"].flags and "identical_to:lora" in cells["lora+gepa"].flags
    pairs = {(p.a, p.b): p for p in comparison.pairwise}
    assert pairs["gepa", "baseline"].difference is None and "identical arms" in pairs["gepa", "baseline"].not_measured
    assert pairs["lora", "baseline"].difference is not None
    assert comparison.synergy.logit is None and comparison.synergy.not_measured.startswith("not measured")
    assert comparison.verdict.combination_minus_best is None and comparison.verdict.interaction is None
    assert "synergy not measured" in report.summary[0]
    markdown = to_markdown(report)
    assert "Synergy not measured" in markdown and "interaction contrast, logit scale" not in markdown
    assert {x.contrast: x for x in comparison.class_contrasts}["synergy"].macro_f1 is None


def test_a_gepa_step_that_changed_nothing_is_not_measured(tmp_path):
    nothing = (StepInfo(step="gepa", changed=False, detail="0 of 5 proposals accepted (no usable instruction)"),)
    answers = {"baseline": BLOCK_GOOD * 5, "lora": BLOCK_GOLD * 5, "gepa": BLOCK_GOOD[::-1] * 5,
               "lora+gepa": BLOCK_GOLD * 5}
    sentiment_store(tmp_path, answers, steps={"gepa": nothing, "lora+gepa": nothing})
    report = build_report(tmp_path, SETTINGS)
    comparison = report.comparisons[0]
    cells = {c.cell: c for c in comparison.cells}
    assert "gepa_unchanged" in cells["gepa"].flags
    pairs = {(p.a, p.b): p for p in comparison.pairwise}
    assert "changed nothing (0 of 5 proposals accepted" in pairs["gepa", "baseline"].not_measured
    assert pairs["lora+gepa", "gepa"].difference is not None  # LoRA's own effect is still measured
    assert comparison.synergy.not_measured
    files = write_report(report, tmp_path / "report")
    assert "gepa: 0 of 5 proposals accepted" in files.markdown.read_text()


def test_a_degenerate_mixed_fit_is_reported_not_given_a_p_value(tmp_path):
    # Every configuration answers each item alike: item effects separate the answers completely.
    answers = {cell: BLOCK_GOOD * 5 for cell in CELLS}
    sentiment_store(tmp_path, answers, seeds=(0, 1, 2))
    comparison = build_report(tmp_path, SETTINGS).comparisons[0]
    assert comparison.synergy.mixed is None
    assert "did not converge" in comparison.synergy.mixed_error or "degenerate" in comparison.synergy.mixed_error
    assert any("could not be fitted" in sentence for sentence in comparison.verdict.sentences)


def test_computation_floor_is_the_best_constant_answer(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    gold = [12.5] * 3 + [7.0, 8.0]
    store.register_items("calc", [ItemRecord(id=f"c{j}", digest=f"{j:016d}", gold={"value": g}) for j, g in enumerate(gold)],
                         TaskInfo(task="computation", label_fields=["value"]))
    for cell, (lora, gepa) in CELLS.items():
        store.write(RespondentRecord(
            configuration=Configuration(name=f"{cell.replace('+', '-')}-s0", domain="calc", lora=lora, gepa=gepa,
                                        adapter="a" if lora else None),
            identity=cell, model="m", model_fingerprint="f",
            cells=[Cell(item=f"c{j}", score=float(j < 2), correct=j < 2, output={"value": 12.5}) for j in range(5)]))
    comparison = build_report(tmp_path, SETTINGS).comparisons[0]
    assert comparison.floors.majority == pytest.approx(0.6) and comparison.floors.majority_answer == "12.5"
    assert comparison.floors.chance is None and comparison.cells[0].classes is None
    assert comparison.cells[0].top_answer == "12.5" and "degenerate" in comparison.cells[0].flags


def test_reports_cover_one_split_and_say_which(tmp_path):
    answers = {"baseline": ["neutral"] * 50, "lora": BLOCK_GOOD * 5, "gepa": BLOCK_GOOD[::-1] * 5,
               "lora+gepa": BLOCK_GOLD * 5}
    store = sentiment_store(tmp_path, answers)
    dev = [ItemRecord(id=f"dev-{j}", digest=f"dev{j:013d}", split="dev", gold={"label": "neutral"}) for j in range(8)]
    store.register_items("sent", dev)
    for record in store.respondents("sent"):  # every configuration also answered dev items, all correctly
        cells = [Cell(item=item.id, score=1.0, correct=True, output={"label": "neutral"}) for item in dev]
        store.write(record.model_copy(update={"cells": [*record.cells, *cells]}))
    test = build_report(tmp_path, SETTINGS)
    assert test.comparisons[0].items == 50 and test.comparisons[0].split == "test"
    assert "## Domain: sent (50 test items)" in to_markdown(test)
    dev_report = build_report(tmp_path, SETTINGS.model_copy(update={"split": "dev"}))
    assert dev_report.comparisons[0].items == 8 and "--split dev" in dev_report.command


def test_the_majority_answer_has_its_macro_f1_among_the_floors():
    from ax.evals.classification import domain_floors

    gold = ["neutral"] * 60 + ["positive"] * 28 + ["negative"] * 12
    floors = domain_floors(gold, label_field="label", labels=["negative", "neutral", "positive"])
    assert floors.majority == 0.6 and floors.majority_macro_f1 == pytest.approx(2 * 0.6 / 1.6 / 3)
    assert domain_floors(["1.0", "2.0"], label_field=None, labels=None).majority_macro_f1 is None


def test_per_step_accuracy_of_a_multi_step_program_is_reported_per_cell(tmp_path):
    answers = {"baseline": ["neutral"] * 50, "lora": BLOCK_GOOD * 5, "gepa": BLOCK_GOOD[::-1] * 5,
               "lora+gepa": BLOCK_GOLD * 5}
    # A first step right on every even item, the second wherever the label is.
    sentiment_store(tmp_path, answers, step_scores=lambda j, correct: {"first": float(j % 2 == 0),
                                                                       "second": float(correct)})
    comparison = build_report(tmp_path, SETTINGS).comparisons[0]
    steps = {(x.cell, x.step): x.accuracy.estimate for x in comparison.steps}
    assert steps["baseline", "first"] == pytest.approx(0.5) and steps["baseline", "second"] == pytest.approx(0.6)
    assert steps["lora+gepa", "second"] == 1.0
    assert "Per step of the program" in to_markdown(build_report(tmp_path, SETTINGS))


def test_the_examples_floor_counts_every_gold_field_of_an_item_at_once():
    import dspy

    from ax.programs import get_domain
    from ax.programs.floors import examples_majority_floor

    legal = get_domain("legal")  # scored on both of its gold fields
    first, second = legal.labels()[:2]
    rows = [dict(a="x", b="y"), dict(a="x", b="z"), dict(a="x", b="z"), dict(a="w", b="y")]
    examples = [dspy.Example(**{first: row["a"], second: row["b"]}) for row in rows]
    assert examples_majority_floor(legal, examples) == 0.5  # (x, z) twice; "x" alone would give 0.75


def test_cells_and_adaptive_runs_are_called_degenerate_for_the_same_reasons():
    from ax.evals.classification import Floors
    from ax.evals.comparison import Estimate, degenerate_reasons

    floors = Floors(label_field="label", majority_answer="neutral", majority=0.6, chance=1 / 3,
                    labels=["negative", "neutral", "positive"])
    low, high = Estimate(estimate=0.58, low=0.55, high=0.61), Estimate(estimate=0.8, low=0.75, high=0.85)
    assert degenerate_reasons("positive", 0.5, high, floors) == []
    assert degenerate_reasons("neutral", 0.97, low, floors) == [
        "answers 'neutral' for 97% of the items",
        "accuracy 58.0% [55.0, 61.0] does not beat the majority floor 60.0% (always 'neutral')"]
    adaptive = degenerate_reasons("neutral", 0.97, low, floors, adaptive=True)
    assert adaptive[0].endswith("of the items asked") and adaptive[1].startswith("estimated accuracy")
    assert degenerate_reasons(None, None, low, None) == []
