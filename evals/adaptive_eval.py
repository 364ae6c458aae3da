"""Adaptive evaluation on calibrated items: how few items a new configuration needs, and at what error.

Two uses of ``ax.evals.adaptive``:

* :func:`adaptive_check` (in every report) replays both methods' adaptive tests from the stored
  full evaluations of the comparison runs and compares each with its full-length result, the way
  ``ax compare --adaptive`` checks its pool (:func:`held_out_replays`): each seed's runs are tested
  by a scorer built without them, so they are new to it, as a fresh configuration would be.
* :func:`adaptive_evaluate` scores new configurations live (``ax evaluate --adaptive``, ``ax compare
  --adaptive``): each item is run through the model only when its test picks it, by whichever
  method :func:`adaptive_plan` finds misses less when replayed on the pool (``irt``: maximum Fisher
  information at the current EAP ability; ``sampled``: random items and the pool's answers as
  predictor, ``ax.evals.sampled``); the answers are kept in the response store like any other, and
  the estimate with its respondent's record, where the report finds it.

IRT, in both, calibrates the 1PL or the 2PL, whichever predicts held-out respondents better
(:func:`ax.evals.adaptive.cross_validated_model`), rather than by respondent count alone.

The goal the issue sets: within 2 accuracy points of the full evaluation using at most a
quarter of the items (``ax.evals.adaptive`` stops on it by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any, Literal

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
    run_adaptive_test,
    sampling_floor,
)
from ax.evals.calibration import calibrate_pool
from ax.evals.matrix_store import AdaptiveEstimate, ResponseMatrix, ResponseStore, item_record
from ax.evals.runner import PreparedRespondent, answer, prepare, seed_shards
from ax.evals.sampled import item_order, run_sampled_test
from ax.programs.domain import Domain
from ax.programs.registry import get_domain
from ax.workers import run_in_workers

BUDGET_FRACTIONS = (0.1, 0.25, 0.5)
MIN_HELD_OUT_POOL = 10


Method = Literal["irt", "sampled"]
METHODS: tuple[Method, ...] = ("irt", "sampled")


class AdaptiveBudget(BaseModel):
    """One method's held-out replays of the comparison runs at one item budget: items used, |forecast - accuracy
    on every item|, and what as many random items would miss by.

    ``mean_standard_error`` is the forecasts' own standard error: near the actual errors when the
    method's model fits, below them when it does not.
    """

    method: Method
    fraction: float
    max_items: int
    mean_items_used: float
    mean_abs_error: float
    max_abs_error: float
    mean_standard_error: float
    random_items_error: float


class AdaptiveCheck(BaseModel):
    domain: str
    pool: int  # complete respondents the replays were calibrated on, each group without itself
    runs: list[str]
    items: int
    budgets: list[AdaptiveBudget]
    goal_met: bool
    sentence: str


def adaptive_check(matrix: ResponseMatrix, fractions: tuple[float, ...] = BUDGET_FRACTIONS) -> AdaptiveCheck | None:
    """Replay both methods' adaptive tests of the domain's complete comparison runs at each budget, as
    ``ax compare --adaptive`` checks its pool before trusting it (:func:`held_out_replays`: each seed's
    runs, or fold, tested by a scorer built without them; stopping as live tests do).

    None when there is nothing to replay: no complete comparison run, or no group the rest can calibrate.
    """
    rows = calibration_rows(matrix, ())
    targets = {r for r in rows if matrix.respondents[r].role == "comparison"}
    n_items = len(matrix.item_ids)
    _, by_seed = replay_groups(matrix, rows)
    limits = [item_budget(n_items, fraction) for fraction in fractions]
    budgets = []
    for method in METHODS:
        replays = [r for r in held_out_replays(matrix, rows, method, budgets=limits) if r.row in targets]
        for fraction, limit in zip(fractions, limits):
            mine = [r for r in replays if r.max_items == limit]
            if not mine:
                continue
            errors = np.abs([r.error for r in mine])
            budgets.append(AdaptiveBudget(
                method=method, fraction=fraction, max_items=limit,
                mean_items_used=float(np.mean([r.items_used for r in mine])), mean_abs_error=float(errors.mean()),
                max_abs_error=float(errors.max()), mean_standard_error=float(np.mean([r.standard_error for r in mine])),
                random_items_error=float(np.mean([r.random_items_error for r in mine]))))
    if not budgets:
        return None
    goal = min((b for b in budgets if b.fraction <= GOAL_FRACTION), key=lambda b: b.mean_abs_error, default=None)
    goal_met = goal is not None and goal.mean_abs_error <= GOAL_ERROR
    sentence = (
        f"Adaptive tests of {len(targets)} comparison run(s) replayed from their stored answers, "
        + ("each seed's runs" if by_seed else "each fifth of the respondents (under three seeds)")
        + f" tested by a scorer built on the rest of the {len(rows)} complete respondents: "
        + "; ".join(f"{b.method}, {b.mean_items_used:.0f} item(s) asked (budget {100 * b.fraction:.0f}%), mean "
                    f"error {100 * b.mean_abs_error:.1f} accuracy points (max {100 * b.max_abs_error:.1f}; as many "
                    f"random items: {100 * b.random_items_error:.1f})" for b in budgets)
        + ". "
        + (f"The goal (within 2 points using at most a quarter of the items) was met ({goal.method})." if goal_met else
           "The goal (within 2 points using at most a quarter of the items) was not met.")
        + (f" With {n_items} items (under {MIN_ADAPTIVE_ITEMS}) the unasked items alone leave a mean "
           f"error of about {100 * small_pool_floor(matrix, rows):.1f} points at a quarter of them (the sampling "
           "floor): no method meets the goal on this pool." if n_items < MIN_ADAPTIVE_ITEMS else ""))
    return AdaptiveCheck(domain=matrix.domain, pool=len(rows), runs=[matrix.respondents[r].name for r in sorted(targets)],
                         items=n_items, budgets=budgets, goal_met=goal_met, sentence=sentence)


class AdaptiveResult(BaseModel):
    """One configuration scored adaptively: its stored estimate, and how many of its answers this call added."""

    name: str
    domain: str
    new_answers: int
    estimate: AdaptiveEstimate


@dataclass(frozen=True)
class ScoringOutcome:
    """What one test gives, either method: the items asked (column indices), the accuracy over every item with
    its SE and the part of it the unasked items' chance makes; the ability only for IRT."""

    items: tuple[int, ...]
    accuracy: float
    standard_error: float
    unasked_standard_error: float
    stop_reason: str
    theta: float | None = None
    theta_standard_error: float | None = None


class AdaptiveScorer:
    """One method's tests over a pool of complete respondents (``rows`` of ``matrix``).

    ``irt``: items calibrated on the pool (1PL or 2PL, whichever predicts held-out respondents
    better), the most informative item asked next (:func:`ax.evals.adaptive.run_adaptive_test`),
    the forecast extended to the items the pool answered alike. ``sampled``: random items in an
    order fixed by the configuration's name, the pool's answers as the predictor
    (:func:`ax.evals.sampled.run_sampled_test`).
    """

    def __init__(self, method: Method, matrix: ResponseMatrix, rows: Sequence[int], *, max_items: int | None = None,
                 target_standard_error: float = TARGET_STANDARD_ERROR):
        self.method, self.max_items, self.target = method, max_items, target_standard_error
        self.n_items = len(matrix.item_ids)
        self.pool = matrix.correct[list(rows)]
        self.calibrated_on = len(rows)
        if method == "irt":
            calibration = calibrate_pool(matrix, rows=rows, model=cross_validated_model(self.pool))
            self.items = calibration.calibration.items
            self.model = calibration.model
            self.calibrated = int(self.items.calibrated.sum())
            self.settled = float(self.pool[:, ~self.items.calibrated].mean(axis=0).sum())
        else:
            self.model, self.calibrated = "neighbours", self.n_items

    def test(self, respond: Callable[[int], int], key: str, max_items: int | None = None) -> ScoringOutcome:
        """One test; ``max_items`` overrides the scorer's budget for it."""
        limit = self.max_items if max_items is None else max_items
        if self.method == "sampled":
            sampled = run_sampled_test(respond, self.pool, item_order(self.n_items, key), max_items=limit,
                                       target_standard_error=self.target)
            e = sampled.estimate
            return ScoringOutcome(sampled.items, e.accuracy, e.standard_error, e.unasked_standard_error,
                               sampled.stop_reason)
        result = run_adaptive_test(respond, self.items, max_items=limit,
                                   target_standard_error=self.target)
        state = over_every_item(result.forecast, self.calibrated, self.settled, self.n_items)
        return ScoringOutcome(result.items, state.accuracy, state.accuracy_standard_error, state.unasked_standard_error,
                           result.stop_reason, state.theta, state.theta_standard_error)


class HeldOutReplay(BaseModel):
    """One pool respondent tested from its stored answers by a scorer built without its group."""

    row: int
    method: str
    max_items: int | None
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


def replay_groups(matrix: ResponseMatrix, rows: Sequence[int]) -> tuple[np.ndarray, bool]:
    """The group of each respondent in ``rows`` for :func:`held_out_replays`, and whether groups are seeds: its
    seed where ``rows`` span three seeds or more, else one of five folds."""
    seeds = np.array([matrix.respondents[r].seed for r in rows])
    by_seed = np.unique(seeds).size >= 3
    return (seeds if by_seed else np.arange(len(rows)) % CROSS_VALIDATION_FOLDS), bool(by_seed)


def held_out_replays(matrix: ResponseMatrix, rows: Sequence[int], method: Method = "irt", *,
                     budgets: Sequence[int | None] = (None,),
                     target_standard_error: float = TARGET_STANDARD_ERROR) -> list[HeldOutReplay]:
    """Replay ``method``'s tests of the complete respondents in ``rows``, each group's scorer built without it,
    once per item budget (None: the live default, a quarter of the items).

    Groups are seeds where ``rows`` span three or more (a seed's runs share training data and adapters,
    so they are near copies of each other), else five folds of respondents. A group whose pool cannot
    be calibrated is left out.
    """
    rows = np.asarray(rows, dtype=int)
    groups, _ = replay_groups(matrix, rows)
    out = []
    for group in np.unique(groups):
        tested, pool = rows[groups == group], rows[groups != group]
        if pool.size < 2:
            continue
        try:
            scorer = AdaptiveScorer(method, matrix, pool, target_standard_error=target_standard_error)
        except AxError:
            continue
        for r, budget in product(tested, budgets):
            outcome = scorer.test(lambda j, r=r: int(matrix.correct[r, j]), matrix.respondents[r].name,
                                  max_items=budget)
            out.append(HeldOutReplay(row=int(r), method=method, max_items=budget, calibrated_on=int(pool.size),
                                     irt_model=scorer.model, calibrated_items=scorer.calibrated,
                                     items_used=len(outcome.items), forecast=outcome.accuracy,
                                     standard_error=outcome.standard_error, total_items=scorer.n_items,
                                     observed=float(matrix.correct[r].mean())))
    return out


class AdaptivePlan(BaseModel):
    """Which method adaptive scoring should use on a pool, what its replays on the pool missed by, and, when
    every item should be answered instead, why (``reason``)."""

    method: Method
    held_out_error: float | None = None  # the chosen method's mean |error| replayed on the pool
    random_items_error: float | None = None  # as many random items, plain accuracy
    errors: dict[str, float] = {}
    reason: str | None = None


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


def adaptive_plan(matrix: ResponseMatrix, tested: Collection[str]) -> AdaptivePlan:
    """The method whose replays on the pool (every complete respondent not in ``tested``) miss least, and
    why ``ax compare --adaptive`` should answer every item instead, if it should.

    Every item is answered: under ``MIN_ADAPTIVE_ITEMS`` items (the unasked items alone leave more
    than the goal's error at a quarter of the pool: :func:`ax.evals.adaptive.pool_sampling_floor`),
    under ``MIN_HELD_OUT_POOL`` pool respondents, or when the better method's replays miss by more
    than as many random items would.
    """
    rows = calibration_rows(matrix, tested)
    n_items = len(matrix.item_ids)
    if n_items < MIN_ADAPTIVE_ITEMS:
        return AdaptivePlan(method="irt", reason=(
            f"the test split has {n_items} items, under {MIN_ADAPTIVE_ITEMS}: at a quarter of them the items not "
            f"asked alone leave a mean error of about {100 * small_pool_floor(matrix, rows):.1f} accuracy points "
            f"(the sampling floor), so adaptive testing cannot meet the {100 * GOAL_ERROR:.0f}-point goal"))
    if len(rows) < MIN_HELD_OUT_POOL:
        return AdaptivePlan(method="irt", reason=(
            f"only {len(rows)} respondent(s) besides those tested answered every test item; adaptive scoring needs at "
            f"least {MIN_HELD_OUT_POOL} (GEPA candidates, more seeds, ablations or an earlier full comparison in this "
            "run directory)"))
    replays = {method: held_out_replays(matrix, rows, method) for method in METHODS}
    errors = {method: held_out_error(found) for method, found in replays.items() if found}
    if not errors:
        return AdaptivePlan(method="irt", reason="no test could be replayed on the pool's respondents to check it")
    method = min(errors, key=errors.get)
    random = float(np.mean([r.random_items_error for r in replays[method]]))
    plan = AdaptivePlan(method=method, held_out_error=errors[method], random_items_error=random, errors=errors)
    if errors[method] > random:
        return plan.model_copy(update={"reason": (
            f"tests replayed on the pool's own respondents (each group left out in turn) missed their accuracy on "
            f"every item by {100 * errors[method]:.1f} points on average ({method}), where as many random items "
            f"would miss by about {100 * random:.1f}")})
    return plan


def held_out_error(replays: Sequence[HeldOutReplay]) -> float | None:
    """Mean |forecast - accuracy| of :func:`held_out_replays` (None if none): the pool's own evidence of how
    far an adaptive estimate lands, which the model's SE does not show."""
    return float(np.mean([abs(r.error) for r in replays])) if replays else None


def adaptive_evaluate(configurations: Sequence[Configuration], domain: Domain, *, lm: dspy.BaseLM,
                      store: ResponseStore, max_items: int | None = None,
                      target_standard_error: float = TARGET_STANDARD_ERROR, command: str | None = None,
                      plan: AdaptivePlan | None = None) -> list[AdaptiveResult]:
    """Score each configuration on the domain's stored test items, asking the model only for the items its test picks.

    The pool is :func:`calibration_rows` (every complete respondent not tested here); the method is
    ``plan``'s (default :func:`adaptive_plan`'s: whichever misses least replayed on the pool, whose
    error each estimate stores). Each test stops at its SE target or after a quarter of the items.
    The configurations' tests run side by side in threads, so their calls on the ax client share
    mixed-adapter batches. Answers already stored are reused; each record is stored with its estimate,
    also when another test fails.
    """
    names = [c.name for c in configurations]
    if not names or len(set(names)) != len(names):
        raise AxError(f"adaptive_evaluate needs configurations with distinct names, got {names}")
    matrix = store.matrix(domain.name, "test")  # the split the report covers; dev answers would leak into it
    rows = calibration_rows(matrix, names)
    if len(rows) < 2:
        raise AxError(f"domain {domain.name!r}: fewer than 2 respondents besides {', '.join(names)} answered every "
                      f"test item in {store.root}; answer the test split with other configurations first")
    plan = plan or adaptive_plan(matrix, names)
    scorer = AdaptiveScorer(plan.method, matrix, rows, max_items=max_items, target_standard_error=target_standard_error)
    examples = {str(e.id): e for e in domain.splits().all()}
    stored_items = {item.id: item for item in store.items(domain.name)}
    missing = [item for item in matrix.item_ids if item not in examples
               or item_record(examples[item]).digest != stored_items[item].digest]
    if missing:
        raise AxError(f"domain {domain.name!r}: stored item(s) {', '.join(missing[:5])} are missing from the domain's "
                      "data or changed since they were answered")
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
            outcome = scorer.test(respond, record.configuration.name)
            estimate = AdaptiveEstimate(
                method=plan.method, items=[matrix.item_ids[j] for j in outcome.items], pool_items=scorer.n_items,
                calibrated_items=scorer.calibrated, theta=outcome.theta,
                theta_standard_error=outcome.theta_standard_error, accuracy=outcome.accuracy,
                accuracy_standard_error=outcome.standard_error,
                sampling_floor=sampling_floor(outcome.unasked_standard_error), stop_reason=outcome.stop_reason,
                irt_model=scorer.model, calibrated_on=len(rows), held_out_error=plan.held_out_error)
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
