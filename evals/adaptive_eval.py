"""Adaptive evaluation on calibrated items: how few items a new configuration needs, and at what error.

Two uses of ``ax.evals.adaptive``:

* :func:`adaptive_check` (in every report) replays adaptive tests from the stored full
  evaluations of the comparison runs and compares each with its full-length result. Items are
  calibrated on the calibration-role respondents only, so the replayed runs are new to the
  calibration, as a fresh configuration would be; with fewer than ``MIN_HELD_OUT_POOL`` such
  respondents the whole pool is used and the check is marked in-sample (optimistic).
* :func:`adaptive_evaluate` scores new configurations live (``ax evaluate --adaptive``, ``ax compare
  --adaptive``): each chosen item is run through the model only when picked (maximum Fisher
  information at the current EAP ability); the answers are kept in the response store like any
  other, and the estimate with its respondent's record, where the report finds it.

Both calibrate the 1PL or the 2PL, whichever predicts held-out respondents better
(:func:`ax.evals.adaptive.cross_validated_model`), rather than by respondent count alone.

The goal the issue sets: within 2 accuracy points of the full evaluation using at most a
quarter of the items (``ax.evals.adaptive`` stops on it by default).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import dspy
import numpy as np
from dspy.utils.parallelizer import ParallelExecutor
from pydantic import BaseModel

from ax.client import LM
from ax.configuration import Configuration
from ax.errors import AxError
from ax.evals.adaptive import (
    CROSS_VALIDATION_FOLDS,
    GOAL_ERROR,
    GOAL_FRACTION,
    MIN_ADAPTIVE_ITEMS,
    TARGET_STANDARD_ERROR,
    cross_validated_model,
    item_budget,
    over_every_item,
    pool_sampling_floor,
    replay_adaptive_tests,
    run_adaptive_test,
    sampling_floor,
)
from ax.evals.calibration import calibrate_pool
from ax.evals.comparison import comparison_rows
from ax.evals.matrix_store import AdaptiveEstimate, ResponseMatrix, ResponseStore, item_record
from ax.evals.runner import PreparedRespondent, answer, prepare, seed_shards
from ax.programs.domain import Domain
from ax.programs.registry import get_domain
from ax.workers import run_in_workers

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
           "The goal (within 2 points using at most a quarter of the items) was not met.")
        + (f" With {len(matrix.item_ids)} items (under {MIN_ADAPTIVE_ITEMS}) the unasked items alone leave a mean "
           f"error of about {100 * small_pool_floor(matrix, rows):.1f} points at a quarter of them (the sampling "
           "floor): no method meets the goal on this pool." if len(matrix.item_ids) < MIN_ADAPTIVE_ITEMS else ""))
    return AdaptiveCheck(domain=matrix.domain, irt_model=calibration.model, calibrated_on=len(pool) if held_out else
                         len(matrix.respondents), held_out=held_out, runs=[matrix.respondents[r].name for r in targets],
                         calibrated_items=n_calibrated, budgets=budgets, goal_met=goal_met, sentence=sentence)


class AdaptiveResult(BaseModel):
    """One configuration scored adaptively: its stored estimate, and how many of its answers this call added."""

    name: str
    domain: str
    new_answers: int
    estimate: AdaptiveEstimate


class HeldOutReplay(BaseModel):
    """One pool respondent tested adaptively from its stored answers on items calibrated without its group."""

    row: int
    calibrated_on: int
    irt_model: str
    calibrated_items: int
    items_used: int
    forecast: float
    standard_error: float
    total_items: int
    observed: float  # its accuracy on every item

    @property
    def error(self) -> float:
        return self.forecast - self.observed

    @property
    def random_items_error(self) -> float:
        """The mean |error| of its accuracy on as many items drawn at random instead (the finite-population
        SE times sqrt(2/pi)): what the test must beat to be worth its model."""
        n, k, p = self.total_items, self.items_used, self.observed
        return math.sqrt(2 / math.pi) * math.sqrt(p * (1 - p) / k * (n - k) / max(n - 1, 1))


def held_out_replays(matrix: ResponseMatrix, rows: Sequence[int], **stop: Any) -> list[HeldOutReplay]:
    """Replay adaptive tests of the complete respondents in ``rows``, each group calibrated without it.

    Groups are seeds where ``rows`` span three or more (a seed's runs share training data and adapters,
    so they are near copies of each other), else five folds of respondents. The forecast covers every
    item (:func:`ax.evals.adaptive.over_every_item`); ``stop`` goes to ``replay_adaptive_tests``. A
    group whose calibration finds no item to calibrate is left out.
    """
    rows = np.asarray(rows, dtype=int)
    seeds = np.array([matrix.respondents[r].seed for r in rows])
    groups = seeds if np.unique(seeds).size >= 3 else np.arange(rows.size) % CROSS_VALIDATION_FOLDS
    n_items = len(matrix.item_ids)
    out = []
    for group in np.unique(groups):
        tested, pool = rows[groups == group], rows[groups != group]
        if pool.size < 2:
            continue
        try:
            calibration = calibrate_pool(matrix, rows=pool, model=cross_validated_model(matrix.correct[pool]))
        except AxError:
            continue
        items = calibration.calibration.items
        calibrated = int(items.calibrated.sum())
        settled = float(matrix.correct[pool][:, ~items.calibrated].mean(axis=0).sum())
        for r, replay in zip(tested, replay_adaptive_tests(matrix.correct[tested], items, **stop)):
            state = over_every_item(replay.test.forecast, calibrated, settled, n_items)
            out.append(HeldOutReplay(row=int(r), calibrated_on=int(pool.size), irt_model=calibration.model,
                                     calibrated_items=calibrated, items_used=replay.items_used,
                                     forecast=state.accuracy, standard_error=state.accuracy_standard_error,
                                     total_items=n_items, observed=float(matrix.correct[r].mean())))
    return out


def calibration_rows(matrix: ResponseMatrix, tested: Collection[str]) -> list[int]:
    """The respondents adaptive tests are calibrated on: every one that answered every item and is not being tested.

    Partly answered respondents (earlier adaptive tests, interrupted runs) are left out, so that each of
    several processes testing part of ``tested`` calibrates on the same pool.
    """
    complete = matrix.complete()
    return [r for r, c in enumerate(matrix.respondents) if complete[r] and c.name not in tested]


def small_pool_floor(matrix: ResponseMatrix, rows: Sequence[int]) -> float:
    """:func:`ax.evals.adaptive.pool_sampling_floor` of the matrix's split at the spread ``rows`` show (0.25
    without any)."""
    n_items = len(matrix.item_ids)
    if not len(rows):
        return pool_sampling_floor(n_items)
    p = np.nanmean(matrix.correct[list(rows)], axis=0)
    return pool_sampling_floor(n_items, spread=float(np.nanmean(p * (1 - p))))


def adaptive_refusal(matrix: ResponseMatrix, tested: Collection[str]) -> str | None:
    """Why ``ax compare --adaptive`` answers every item of ``matrix``'s split instead, or None when it need not.

    Under ``MIN_ADAPTIVE_ITEMS`` items the unasked items alone leave more than the goal's error at a
    quarter of the pool (:func:`ax.evals.adaptive.pool_sampling_floor` at the pool's observed spread);
    under ``MIN_HELD_OUT_POOL`` calibration respondents the item parameters are guesswork.
    """
    rows = calibration_rows(matrix, tested)
    n_items = len(matrix.item_ids)
    if n_items < MIN_ADAPTIVE_ITEMS:
        return (f"the test split has {n_items} items, under {MIN_ADAPTIVE_ITEMS}: at a quarter of them the items "
                f"not asked alone leave a mean error of about {100 * small_pool_floor(matrix, rows):.1f} accuracy "
                "points (the sampling floor), "
                f"so adaptive testing cannot meet the {100 * GOAL_ERROR:.0f}-point goal")
    if len(rows) < MIN_HELD_OUT_POOL:
        return (f"only {len(rows)} respondent(s) besides those tested answered every test item; calibrating the items "
                f"needs at least {MIN_HELD_OUT_POOL} (GEPA candidates, more seeds, ablations or an earlier full "
                "comparison in this run directory)")
    share = matrix.correct[rows].mean(axis=0)
    if not ((share > 0) & (share < 1)).any():
        return (f"the {len(rows)} calibration respondents answered every item alike (each item all right or all "
                "wrong), so no item can be calibrated")
    replays = held_out_replays(matrix, rows)
    if not replays:
        return "adaptive tests could not be replayed on the calibration respondents to check them"
    error, random = held_out_error(replays), float(np.mean([r.random_items_error for r in replays]))
    if error > random:
        return (f"adaptive tests replayed on the calibration respondents themselves (each group left out of the "
                f"calibration in turn) missed their accuracy on every item by {100 * error:.1f} points on average, "
                f"where as many random items would miss by about {100 * random:.1f}: the item model does not fit "
                "these answers")
    return None


def held_out_error(replays: Sequence[HeldOutReplay]) -> float | None:
    """Mean |forecast - accuracy| of :func:`held_out_replays` (None if none): the pool's own evidence of how
    far an adaptive estimate lands, which the model's SE does not show."""
    return float(np.mean([abs(r.error) for r in replays])) if replays else None


def adaptive_evaluate(configurations: Sequence[Configuration], domain: Domain, *, lm: dspy.BaseLM,
                      store: ResponseStore, max_items: int | None = None,
                      target_standard_error: float = TARGET_STANDARD_ERROR,
                      command: str | None = None) -> list[AdaptiveResult]:
    """Score each configuration on the domain's stored, calibrated test items, asking the model only for chosen items.

    Items are calibrated on :func:`calibration_rows` (every complete respondent not tested here); each
    test stops as :func:`ax.evals.adaptive.run_adaptive_test` does (by default at a forecast SE aimed at
    the goal's 2 points, or after a quarter of the calibrated items). The configurations' tests run side
    by side in threads, so their calls on the ax client share mixed-adapter batches. Answers already
    stored are reused; each record is stored with its estimate, also when another test fails.
    """
    names = [c.name for c in configurations]
    if not names or len(set(names)) != len(names):
        raise AxError(f"adaptive_evaluate needs configurations with distinct names, got {names}")
    matrix = store.matrix(domain.name, "test")  # the split the report covers; dev answers would leak into it
    rows = calibration_rows(matrix, names)
    if not rows:
        raise AxError(f"domain {domain.name!r}: no respondent besides {', '.join(names)} answered every test item in "
                      f"{store.root}; answer the test split with other configurations first (calibration)")
    calibration = calibrate_pool(matrix, rows=rows, model=cross_validated_model(matrix.correct[rows]))
    items = calibration.calibration.items
    examples = {str(e.id): e for e in domain.splits().all()}
    stored_items = {item.id: item for item in store.items(domain.name)}
    missing = [item for item in matrix.item_ids if item not in examples
               or item_record(examples[item]).digest != stored_items[item].digest]
    if missing:
        raise AxError(f"domain {domain.name!r}: stored item(s) {', '.join(missing[:5])} are missing from the domain's "
                      "data or changed since they were answered")
    calibrated = int(items.calibrated.sum())
    settled = float(matrix.correct[rows][:, ~items.calibrated].mean(axis=0).sum())
    replay_error = held_out_error(held_out_replays(matrix, rows))
    respondents = [prepare(c, domain, lm, store, command) for c in configurations]

    def test(respondent: PreparedRespondent) -> AdaptiveResult | BaseException:
        cells = {cell.item: cell for cell in respondent.record.cells}
        new = []

        def respond(j: int) -> int:
            item = matrix.item_ids[j]
            if item not in cells:
                cells[item] = answer(respondent, examples[item], domain.metric)
                new.append(cells[item])
            return int(cells[item].correct)

        record = respondent.record
        try:
            result = run_adaptive_test(respond, items, max_items=max_items,
                                       target_standard_error=target_standard_error)
            state = over_every_item(result.forecast, calibrated, settled, len(matrix.item_ids))
            estimate = AdaptiveEstimate(
                items=[matrix.item_ids[j] for j in result.items], pool_items=len(matrix.item_ids),
                calibrated_items=calibrated, theta=state.theta, theta_standard_error=state.theta_standard_error,
                accuracy=state.accuracy, accuracy_standard_error=state.accuracy_standard_error,
                sampling_floor=sampling_floor(state.unasked_standard_error), stop_reason=result.stop_reason,
                irt_model=calibration.model, calibrated_on=len(rows), held_out_error=replay_error)
            record = record.model_copy(update={"adaptive": estimate})
            return AdaptiveResult(name=record.configuration.name, domain=domain.name, new_answers=len(new),
                                  estimate=estimate)
        except Exception as error:  # kept and reported once every test has stored what it answered
            return error
        finally:
            store.write(record.model_copy(update={"cells": [*record.cells, *new]}))

    # timeout=0: DSPy would otherwise start a second copy of a test running past two minutes
    executor = ParallelExecutor(num_threads=len(respondents), disable_progress_bar=True,
                                max_errors=len(respondents) + 1, timeout=0)
    results = executor.execute(test, respondents)
    failures = [(name, executor.exceptions_map.get(k, result)) for k, (name, result) in enumerate(zip(names, results))
                if not isinstance(result, AdaptiveResult)]
    if failures:
        name, error = failures[0]
        raise AxError(f"{len(failures)} of {len(names)} adaptive test(s) failed (their answers so far are stored; "
                      f"re-run to go on); first: {name}: {type(error).__name__}: {error}")
    return results


def _adaptive_shard(index: int, *, shards: list[list[Configuration]], run_dir: Path, domain: str, model: str | None,
                    dtype: str | None, options: dict[str, Any]) -> list[AdaptiveResult]:
    return adaptive_evaluate(shards[index], get_domain(domain), lm=LM(model, dtype=dtype),
                             store=ResponseStore(run_dir), **options)


def adaptive_in_workers(run_dir: str | Path, configurations: list[Configuration], domain: str, *, workers: int,
                        model: str | None = None, dtype: str | None = None, **options: Any) -> list[AdaptiveResult]:
    """:func:`adaptive_evaluate` with the configurations split by seed over `workers` processes, each with its
    own model (as ``ax.evals.runner.evaluate_in_workers`` does); every process calibrates on the same pool."""
    shards = seed_shards(configurations, domain, workers)
    results = run_in_workers(partial(_adaptive_shard, shards=shards, run_dir=Path(run_dir), domain=domain,
                                     model=model, dtype=dtype, options=options),
                             [(index,) for index in range(len(shards))], workers=workers)
    return [result for shard in results for result in shard]
