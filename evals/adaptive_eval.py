"""Adaptive evaluation on calibrated items: how few items a new configuration needs, and at what error.

Two uses of ``ax.evals.adaptive``:

* :func:`adaptive_check` (in every report) replays adaptive tests from the stored full
  evaluations of the comparison runs and compares each with its full-length result. Items are
  calibrated on the calibration-role respondents only, so the replayed runs are new to the
  calibration, as a fresh configuration would be; with fewer than ``MIN_HELD_OUT_POOL`` such
  respondents the whole pool is used and the check is marked in-sample (optimistic).
* :func:`adaptive_evaluate` scores a new configuration live: each chosen item is run through
  the model only when picked (maximum Fisher information at the current EAP ability), and its
  answers are kept in the response store like any other.

Both calibrate the 1PL or the 2PL, whichever predicts held-out respondents better
(:func:`ax.evals.adaptive.cross_validated_model`), rather than by respondent count alone.

The goal the issue sets: within 2 accuracy points of the full evaluation using at most a
quarter of the items (``ax.evals.adaptive`` stops on it by default).
"""

from __future__ import annotations

from typing import Any

import dspy
import numpy as np
from pydantic import BaseModel

from ax.configuration import Configuration
from ax.errors import AxError
from ax.evals.adaptive import (
    GOAL_ERROR,
    GOAL_FRACTION,
    TARGET_STANDARD_ERROR,
    cross_validated_model,
    item_budget,
    replay_adaptive_tests,
    run_adaptive_test,
)
from ax.evals.calibration import calibrate_pool
from ax.evals.comparison import comparison_rows
from ax.evals.matrix_store import ResponseMatrix, ResponseStore, item_record
from ax.evals.runner import answer, prepare
from ax.programs.domain import Domain

BUDGET_FRACTIONS = (0.1, 0.25, 0.5)
MIN_HELD_OUT_POOL = 10


class AdaptiveBudget(BaseModel):
    """Replays at one item budget: items used and |forecast - observed accuracy| over the replayed runs.

    ``mean_standard_error`` is the forecasts' own standard error: near the actual errors when the
    model fits, below them when the items are misfit or poorly calibrated.
    """

    fraction: float
    max_items: int
    mean_items_used: float
    mean_abs_error: float
    max_abs_error: float
    mean_standard_error: float
    mean_abs_theta_error: float


class AdaptiveCheck(BaseModel):
    domain: str
    irt_model: str
    calibrated_on: int
    held_out: bool
    runs: list[str]
    calibrated_items: int
    budgets: list[AdaptiveBudget]
    goal_met: bool
    sentence: str


def adaptive_check(matrix: ResponseMatrix, fractions: tuple[float, ...] = BUDGET_FRACTIONS) -> AdaptiveCheck | None:
    """Replay adaptive tests of the domain's complete comparison runs at each budget, stopping as live tests do.

    None when there is nothing to replay: no complete comparison run, or no item the pool can calibrate.
    """
    by_cell, _ = comparison_rows(matrix)
    targets = sorted(r for rows in by_cell.values() for r in rows)
    pool = [r for r, c in enumerate(matrix.respondents) if c.role == "calibration"]
    held_out = len(pool) >= MIN_HELD_OUT_POOL
    if not targets:
        return None
    rows = pool if held_out else list(range(len(matrix.respondents)))
    try:
        calibration = calibrate_pool(matrix, rows=rows, model=cross_validated_model(matrix.correct[rows]))
    except AxError:
        return None
    items = calibration.calibration.items
    n_calibrated = int(items.calibrated.sum())
    budgets = []
    for fraction in fractions:
        max_items = item_budget(n_calibrated, fraction)
        replays = replay_adaptive_tests(matrix.correct[targets], items, max_items=max_items)
        errors = np.abs([replay.accuracy_error for replay in replays])
        budgets.append(AdaptiveBudget(
            fraction=fraction, max_items=max_items, mean_items_used=float(np.mean([p.items_used for p in replays])),
            mean_abs_error=float(errors.mean()), max_abs_error=float(errors.max()),
            mean_standard_error=float(np.mean([p.test.forecast.accuracy_standard_error for p in replays])),
            mean_abs_theta_error=float(np.mean([abs(p.test.forecast.theta - p.full_theta) for p in replays]))))
    goal = min((b for b in budgets if b.fraction <= GOAL_FRACTION), key=lambda b: b.mean_abs_error, default=None)
    goal_met = goal is not None and goal.mean_abs_error <= GOAL_ERROR
    scope = ("items calibrated without them" if held_out else
             f"items calibrated on the same respondents (fewer than {MIN_HELD_OUT_POOL} calibration-only "
             "respondents): in-sample, optimistic")
    sentence = (
        f"Adaptive testing of {len(targets)} comparison run(s) on {n_calibrated} calibrated items ({scope}): "
        + "; ".join(f"{b.mean_items_used:.0f} item(s) ({100 * b.fraction:.0f}%) gave a mean error of "
                    f"{100 * b.mean_abs_error:.1f} accuracy points (max {100 * b.max_abs_error:.1f}; "
                    f"forecast SE {100 * b.mean_standard_error:.1f})" for b in budgets)
        + ". "
        + ("The goal (within 2 points using at most a quarter of the items) was met." if goal_met else
           "The goal (within 2 points using at most a quarter of the items) was not met."))
    return AdaptiveCheck(domain=matrix.domain, irt_model=calibration.model, calibrated_on=len(pool) if held_out else
                         len(matrix.respondents), held_out=held_out, runs=[matrix.respondents[r].name for r in targets],
                         calibrated_items=n_calibrated, budgets=budgets, goal_met=goal_met, sentence=sentence)


class AdaptiveResult(BaseModel):
    """A configuration scored adaptively: items used, ability with SE, and the full-pool accuracy forecast with SE."""

    name: str
    domain: str
    items_used: int
    calibrated_items: int
    new_answers: int
    theta: float
    standard_error: float
    predicted_accuracy: float
    accuracy_standard_error: float
    stop_reason: str
    irt_model: str
    calibrated_on: int


def adaptive_evaluate(configuration: Configuration, domain: Domain, *, lm: dspy.BaseLM, store: ResponseStore,
                      max_items: int | None = None, target_standard_error: float = TARGET_STANDARD_ERROR,
                      command: str | None = None) -> AdaptiveResult:
    """Score ``configuration`` on the domain's stored, calibrated items, asking the model only for chosen items.

    Items are calibrated on every other respondent in ``store``; the test stops as
    :func:`ax.evals.adaptive.run_adaptive_test` does (by default at a forecast SE aimed at the
    goal's 2 points, or after a quarter of the calibrated items). Answers already stored for this configuration are reused.
    """
    matrix = store.matrix(domain.name, "test")  # the split the report covers; dev answers would leak into it
    others = [r for r, c in enumerate(matrix.respondents) if c.name != configuration.name]
    calibration = calibrate_pool(matrix, rows=others, model=cross_validated_model(matrix.correct[others]))
    items = calibration.calibration.items
    examples = {str(e.id): e for e in domain.splits().all()}
    stored_items = {item.id: item for item in store.items(domain.name)}
    missing = [item for item in matrix.item_ids if item not in examples
               or item_record(examples[item]).digest != stored_items[item].digest]
    if missing:
        raise AxError(f"domain {domain.name!r}: stored item(s) {', '.join(missing[:5])} are missing from the domain's "
                      "data or changed since they were answered")
    respondent = prepare(configuration, domain, lm, store, command)
    cells = {cell.item: cell for cell in respondent.record.cells}
    new = []

    def respond(j: int) -> int:
        item = matrix.item_ids[j]
        if item not in cells:
            cells[item] = answer(respondent, examples[item], domain.metric)
            new.append(cells[item])
        return int(cells[item].correct)

    calibrated = int(items.calibrated.sum())
    try:
        test = run_adaptive_test(respond, items, max_items=max_items, target_standard_error=target_standard_error)
    finally:
        store.write(respondent.record.model_copy(update={"cells": [*respondent.record.cells, *new]}))
    return AdaptiveResult(
        name=configuration.name, domain=domain.name, items_used=len(test.items), calibrated_items=calibrated,
        new_answers=len(new), theta=test.forecast.theta, standard_error=test.forecast.theta_standard_error,
        predicted_accuracy=test.forecast.accuracy, accuracy_standard_error=test.forecast.accuracy_standard_error,
        stop_reason=test.stop_reason, irt_model=calibration.model, calibrated_on=len(others))
