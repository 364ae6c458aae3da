"""Computerized adaptive testing: score a configuration on a fraction of a calibrated pool.

Evaluating a configuration costs one model call (or program run) per item. With item
parameters known, each answer narrows the ability estimate, and the most informative next
item is the one whose difficulty sits near the current estimate (Fluid Benchmarking, arXiv
2509.11106, uses the same recipe).

What is reported is the accuracy the full evaluation would have given, so that is what the
test forecasts and stops on: the items answered count as answered, the others by their
expected score under the ability posterior, and the test stops once the forecast's standard
error (in accuracy, not ability) meets the goal, or at a budget of a quarter of the pool.

What that reaches is measured by bench/adaptive_eval.py (simulated 2PL pools, mean |error|
against the full evaluation at a quarter of the items; figures in the README's Measured
section): the error shrinks as the pool grows, and most of it is beyond any estimator: even with
the true ability and item parameters, the unasked items' own right/wrong chance leaves about
sqrt(2/pi) * sqrt(0.75 * p(1-p) / N); ability uncertainty adds most of the rest and calibration
error (2PL from about 100 respondents) a little. Measured and not kept: choosing items by the
expected reduction of the forecast's variance instead of Fisher information (no better or worse
beyond noise), a tighter discrimination prior (log SD 0.3: no gain), plugging in the EAP instead
of averaging over the posterior (no difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
from scipy.special import logsumexp

from ax.errors import AxError
from ax.evals.irt import (
    IrtModel,
    ItemParameters,
    ability_posterior,
    calibrate,
    item_information,
    normal_quadrature,
    response_probability,
)
from ax.evals.responses import as_response_matrix

GOAL_FRACTION, GOAL_ERROR = 0.25, 0.02  # the issue: within 2 accuracy points using at most a quarter of the items
# A normal error's mean absolute value is sqrt(2/pi) (about 0.8) of its SD: stopping at this
# forecast SE aims the mean |error| at GOAL_ERROR rather than at an ability precision whose
# meaning in accuracy points depends on the pool. The forecast SE takes the item parameters as
# exact, and with items calibrated on about 100 respondents the actual errors ran somewhat larger
# than it (bench/adaptive_eval.py prints both, the mean |error| and the forecast SE), hence the
# 1.25 margin.
CALIBRATION_MARGIN = 1.25
TARGET_STANDARD_ERROR = GOAL_ERROR / math.sqrt(2 / math.pi) / CALIBRATION_MARGIN
# The line: under 200 items a quarter of the pool leaves a sampling floor near or above the goal
# (pool_sampling_floor; bench/adaptive_eval.py measures it).
MIN_ADAPTIVE_ITEMS = 200
CROSS_VALIDATION_FOLDS = 5
_QUADRATURE_POINTS = 61  # ability_posterior's default, so batch replays match single tests
_PROBABILITY_FLOOR = 1e-10  # as in ax.evals.irt's likelihood


def item_budget(pool_size: int, fraction: float = GOAL_FRACTION) -> int:
    """How many items ``fraction`` of the pool allows (at least one); by default the goal's quarter."""
    return max(1, math.floor(fraction * pool_size))


def sampling_floor(unasked_standard_error: float) -> float:
    """The mean |error| in accuracy that the unasked items' own right/wrong chance leaves (a normal error's
    mean absolute value is sqrt(2/pi) of its SD): no estimator, however well calibrated, gets below it."""
    return math.sqrt(2 / math.pi) * unasked_standard_error


def pool_sampling_floor(pool_size: int, spread: float = 0.25, fraction: float = GOAL_FRACTION) -> float:
    """:func:`sampling_floor` of a test that asks ``fraction`` of ``pool_size`` items, before any is asked.

    ``spread`` is the unasked items' mean p(1 - p), at most 0.25 (every item a coin flip for the respondent).
    """
    unasked = pool_size - item_budget(pool_size, fraction)
    return sampling_floor(math.sqrt(unasked * spread) / pool_size)


@dataclass(frozen=True)
class Forecast:
    """What the answers so far imply: ability (EAP and posterior SD) and the full-pool accuracy.

    ``accuracy`` is the posterior mean of the accuracy over every calibrated item of the pool;
    ``accuracy_standard_error`` its posterior SD, which counts both the unanswered items' own
    right/wrong chance and the ability's uncertainty, but takes the item parameters as exact:
    with items calibrated on few respondents the actual error is larger. ``unasked_standard_error``
    is the first part alone, which no estimator removes (see :func:`sampling_floor`).
    """

    theta: float
    theta_standard_error: float
    accuracy: float
    accuracy_standard_error: float
    unasked_standard_error: float


def forecast(answers, items: ItemParameters, *, prior_mean: float = 0.0, prior_sd: float = 1.0) -> Forecast:
    """Forecast one respondent from ``answers``: one entry per item, 1/0 where answered, NaN where not.

    Answered items enter as their actual result rather than the model's expectation: it is what
    the full evaluation will count for them, so neither their chance variation nor model misfit
    on them can add error. For the rest the posterior is averaged over instead of plugging in
    a point ability, because P(correct) is not linear in ability and the spread is needed anyway.
    """
    vector = as_response_matrix(answers, name="answers")
    if vector.shape[0] != 1:
        raise AxError(f"answers must be one respondent's vector, got shape {np.shape(answers)}")
    if not items.calibrated.any():
        raise AxError("no calibrated item to forecast the accuracy over")
    nodes, posterior = ability_posterior(vector, items, prior_mean=prior_mean, prior_sd=prior_sd)
    posterior = posterior[0]
    vector = vector[0, items.calibrated]
    unanswered = np.isnan(vector)
    p = response_probability(nodes, items.take(np.flatnonzero(items.calibrated)[unanswered]))
    expected_correct = p.sum(axis=1)  # at each ability node
    mean = float(posterior @ expected_correct)
    unasked = posterior @ (p * (1 - p)).sum(axis=1)
    variance = unasked + posterior @ (expected_correct - mean) ** 2
    theta = float(posterior @ nodes)
    n = vector.size
    return Forecast(theta=theta, theta_standard_error=float(np.sqrt(posterior @ (nodes - theta) ** 2)),
                    accuracy=(float(np.nansum(vector)) + mean) / n,
                    accuracy_standard_error=float(np.sqrt(variance)) / n,
                    unasked_standard_error=float(np.sqrt(unasked)) / n)


def over_every_item(state: Forecast, calibrated: int, settled_correct: float, total: int) -> Forecast:
    """``state`` (a forecast over ``calibrated`` items) as a forecast over all ``total`` items of the split.

    The other items could not be calibrated because every calibration respondent answered them alike;
    they are taken to be answered alike again, ``settled_correct`` of them right, and add no variance
    (optimistic where a new configuration breaks that pattern).
    """
    share = calibrated / total
    return Forecast(theta=state.theta, theta_standard_error=state.theta_standard_error,
                    accuracy=(state.accuracy * calibrated + settled_correct) / total,
                    accuracy_standard_error=state.accuracy_standard_error * share,
                    unasked_standard_error=state.unasked_standard_error * share)


@dataclass(frozen=True)
class AdaptiveTest:
    """The items given in order, the answers, and the forecast after each answer."""

    items: tuple[int, ...]
    responses: tuple[int, ...]
    forecasts: tuple[Forecast, ...]
    stop_reason: Literal["standard_error", "max_items", "pool_exhausted"]

    @property
    def forecast(self) -> Forecast:
        return self.forecasts[-1]


def run_adaptive_test(respond: Callable[[int], int | bool], items: ItemParameters, *,
                      max_items: int | None = None, target_standard_error: float = TARGET_STANDARD_ERROR,
                      available: Sequence[int] | None = None, prior_mean: float = 0.0,
                      prior_sd: float = 1.0) -> AdaptiveTest:
    """Administer items one at a time by maximum Fisher information at the current EAP ability.

    ``respond(item_index)`` runs the configuration on that item and returns 1/True if it was
    correct; it is called only for the items chosen. ``available`` restricts the pool (by
    default every calibrated item); accuracy is forecast over that pool. Stops when the pool
    runs out, once the accuracy forecast's standard error is at most ``target_standard_error``,
    or after ``max_items`` items (default :func:`item_budget` of the pool).
    """
    if max_items is not None and max_items < 1:
        raise AxError(f"max_items = {max_items!r}: must be at least 1")
    if not target_standard_error > 0:
        raise AxError(f"target_standard_error = {target_standard_error!r}: must be positive")
    pool = np.flatnonzero(items.calibrated) if available is None else np.unique(np.asarray(available, dtype=int))
    if pool.size and (pool.min() < 0 or pool.max() >= items.n_items):
        raise AxError(f"available item indices must lie in [0, {items.n_items}), got {pool.min()}..{pool.max()}")
    pool = pool[items.calibrated[pool]]
    if pool.size == 0:
        raise AxError("no calibrated item is available to administer")
    budget = item_budget(pool.size) if max_items is None else max_items
    pool_items = items.take(pool)

    answers = np.full(pool.size, np.nan)
    state = forecast(answers, pool_items, prior_mean=prior_mean, prior_sd=prior_sd)
    chosen, forecasts = [], []
    while True:
        information = np.where(np.isnan(answers), item_information(state.theta, pool_items)[0], -np.inf)
        k = int(np.argmax(information))
        answer = respond(int(pool[k]))
        if answer not in (0, 1):
            raise AxError(f"respond({pool[k]}) returned {answer!r}: expected 0/1 or a bool")
        answers[k] = int(answer)
        chosen.append(k)
        state = forecast(answers, pool_items, prior_mean=prior_mean, prior_sd=prior_sd)
        forecasts.append(state)
        if len(chosen) == pool.size:
            stop_reason = "pool_exhausted"
        elif state.accuracy_standard_error <= target_standard_error:
            stop_reason = "standard_error"
        elif len(chosen) >= budget:
            stop_reason = "max_items"
        else:
            continue
        return AdaptiveTest(tuple(int(pool[k]) for k in chosen), tuple(int(answers[k]) for k in chosen),
                            tuple(forecasts), stop_reason)


@dataclass(frozen=True)
class AdaptiveReplay:
    """An adaptive test replayed from a full-length evaluation, against that evaluation.

    Accuracies are over the ``available_items`` (answered in the full run and calibrated):
    ``predicted_accuracy`` is the adaptive test's forecast, ``observed_accuracy`` the share
    actually correct; ``accuracy_error`` is their difference. ``full_theta`` is the EAP ability
    from all available items, for comparison with the test's.
    """

    test: AdaptiveTest
    items_used: int
    available_items: int
    predicted_accuracy: float
    observed_accuracy: float
    accuracy_error: float
    full_theta: float


def replay_adaptive_test(full_responses, items: ItemParameters, *, max_items: int | None = None,
                         target_standard_error: float = TARGET_STANDARD_ERROR, prior_mean: float = 0.0,
                         prior_sd: float = 1.0) -> AdaptiveReplay:
    """Simulate an adaptive test by looking answers up in a full response vector.

    Tells, before relying on adaptive testing for a new configuration, how many items it would
    have needed and how far its score lands from the full-length evaluation.
    """
    vector = as_response_matrix(full_responses, name="full_responses")
    if vector.shape[0] != 1:
        raise AxError(f"full_responses must be one respondent's vector, got shape {np.shape(full_responses)}")
    vector = vector[0]
    if vector.size != items.n_items:
        raise AxError(f"full_responses has {vector.size} items but the item parameters describe {items.n_items}")
    available = np.flatnonzero(~np.isnan(vector) & items.calibrated)
    if available.size == 0:
        raise AxError("full_responses has no answered item with calibrated parameters")
    test = run_adaptive_test(lambda item: int(vector[item]), items, max_items=max_items,
                             target_standard_error=target_standard_error, available=available,
                             prior_mean=prior_mean, prior_sd=prior_sd)
    observed = float(vector[available].mean())
    full = forecast(vector[available], items.take(available), prior_mean=prior_mean, prior_sd=prior_sd)
    return AdaptiveReplay(test=test, items_used=len(test.items), available_items=int(available.size),
                          predicted_accuracy=test.forecast.accuracy, observed_accuracy=observed,
                          accuracy_error=test.forecast.accuracy - observed, full_theta=full.theta)


def held_out_log_likelihood(responses, items: ItemParameters, *, quadrature_points: int = _QUADRATURE_POINTS) -> float:
    """Marginal log-likelihood of ``responses`` (respondents x items) under ``items`` and an N(0, 1) ability.

    Items with NaN responses or parameters contribute nothing. Summed over respondents the
    calibration did not see, it is the out-of-sample fit used to choose the model.
    """
    matrix = as_response_matrix(responses)
    if matrix.shape[1] != items.n_items:
        raise AxError(f"responses have {matrix.shape[1]} items but the item parameters describe {items.n_items}")
    usable = np.flatnonzero(items.calibrated)
    matrix = matrix[:, usable]
    seen = ~np.isnan(matrix)
    correct = np.where(seen, matrix, 0.0)
    nodes, log_weights = normal_quadrature(quadrature_points)
    p = np.clip(response_probability(nodes, items.take(usable)), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    joint = correct @ np.log(p).T + (seen - correct) @ np.log1p(-p).T + log_weights
    return float(logsumexp(joint, axis=1).sum())


def cross_validated_model(responses, *, folds: int = CROSS_VALIDATION_FOLDS, seed: int = 0) -> IrtModel:
    """"1pl" or "2pl": whichever predicts the answers of respondents left out of the calibration better.

    The respondents are split into ``folds`` groups (at random, reproducibly by ``seed``); each
    model is calibrated without each group and scored by :func:`held_out_log_likelihood` on
    it. Why not a fixed respondent count: on simulated pools whose discriminations really vary
    (log SD 0.3) the 2PL's forecasts were better already at 50 respondents, while on pools where
    they do not (Rasch) it was worse; the held-out likelihood told the two apart
    (bench/adaptive_eval.py). With fewer than two
    respondents per fold, or a fold that leaves no calibratable item, the 1PL.
    """
    matrix = as_response_matrix(responses)
    if folds < 2:
        raise AxError(f"folds = {folds!r}: must be at least 2")
    if matrix.shape[0] < 2 * folds:
        return "1pl"
    group = np.random.default_rng(seed).permutation(matrix.shape[0]) % folds
    score = {}
    for model in ("1pl", "2pl"):
        score[model] = 0.0
        for fold in range(folds):
            try:
                items = calibrate(matrix[group != fold], model).items
            except AxError:
                return "1pl"
            score[model] += held_out_log_likelihood(matrix[group == fold], items)
    return "2pl" if score["2pl"] > score["1pl"] else "1pl"


def replay_adaptive_tests(full_responses, items: ItemParameters, *, max_items: int | None = None,
                          target_standard_error: float = TARGET_STANDARD_ERROR, prior_mean: float = 0.0,
                          prior_sd: float = 1.0) -> list[AdaptiveReplay]:
    """:func:`replay_adaptive_test` for every row of ``full_responses`` at once (same items, forecasts, stops).

    The respondents' tests run side by side as matrix operations, which is what makes replaying
    hundreds of runs (reports, bench/adaptive_eval.py) cheap; each row's test is the one
    :func:`run_adaptive_test` would give (up to floating-point summation order).
    """
    matrix = as_response_matrix(full_responses, name="full_responses")
    if matrix.shape[1] != items.n_items:
        raise AxError(f"full_responses has {matrix.shape[1]} items but the item parameters describe {items.n_items}")
    if max_items is not None and max_items < 1:
        raise AxError(f"max_items = {max_items!r}: must be at least 1")
    if not target_standard_error > 0:
        raise AxError(f"target_standard_error = {target_standard_error!r}: must be positive")
    columns = np.flatnonzero(items.calibrated)
    data, pool = matrix[:, columns], items.take(columns)
    available = ~np.isnan(data)
    counts = available.sum(axis=1)
    if (counts == 0).any():
        raise AxError(f"full_responses row {int(np.argmin(counts))} has no answered item with calibrated parameters")
    budgets = np.array([item_budget(int(c)) if max_items is None else max_items for c in counts])
    correct = np.where(available, data, 0.0)
    nodes, log_weights = normal_quadrature(_QUADRATURE_POINTS, prior_mean, prior_sd)
    p = response_probability(nodes, pool)  # nodes x items
    clipped = np.clip(p, _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    log_right, log_wrong = np.log(clipped), np.log1p(-clipped)
    spread = p * (1 - p)

    def forecasts(log_posterior, asked):
        posterior = np.exp(log_posterior - logsumexp(log_posterior, axis=1, keepdims=True))
        theta = posterior @ nodes
        theta_sd = np.sqrt(np.sum(posterior * (nodes - theta[:, None]) ** 2, axis=1))
        unanswered = (available & ~asked).astype(float)
        expected_at = unanswered @ p.T  # respondents x nodes
        mean = np.sum(posterior * expected_at, axis=1)
        unasked = np.sum(posterior * (unanswered @ spread.T), axis=1)
        variance = unasked + np.sum(posterior * (expected_at - mean[:, None]) ** 2, axis=1)
        accuracy = (np.sum(correct * asked, axis=1) + mean) / counts
        return theta, theta_sd, accuracy, np.sqrt(variance) / counts, np.sqrt(unasked) / counts

    rows = np.arange(matrix.shape[0])
    log_posterior = np.tile(log_weights, (rows.size, 1))
    asked = np.zeros_like(available)
    theta = forecasts(log_posterior, asked)[0]
    chosen = [[] for _ in rows]
    states: list[list[Forecast]] = [[] for _ in rows]
    reasons: list[str | None] = [None] * rows.size
    active = rows
    while active.size:
        information = np.where(available[active] & ~asked[active], item_information(theta[active], pool), -np.inf)
        picks = np.argmax(information, axis=1)
        asked[active, picks] = True
        log_posterior[active] += np.where(correct[active, picks][:, None] == 1, log_right[:, picks].T,
                                          log_wrong[:, picks].T)
        theta, theta_sd, accuracy, accuracy_se, unasked_se = forecasts(log_posterior, asked)
        still = []
        for r, k in zip(active, picks):
            chosen[r].append(int(k))
            states[r].append(Forecast(float(theta[r]), float(theta_sd[r]), float(accuracy[r]), float(accuracy_se[r]),
                                      float(unasked_se[r])))
            if len(chosen[r]) == counts[r]:
                reasons[r] = "pool_exhausted"
            elif accuracy_se[r] <= target_standard_error:
                reasons[r] = "standard_error"
            elif len(chosen[r]) >= budgets[r]:
                reasons[r] = "max_items"
            else:
                still.append(r)
        active = np.array(still, dtype=int)

    full = log_weights + correct @ log_right.T + (available - correct) @ log_wrong.T
    full_posterior = np.exp(full - logsumexp(full, axis=1, keepdims=True))
    full_theta = full_posterior @ nodes
    replays = []
    for r in rows:
        test = AdaptiveTest(tuple(int(columns[k]) for k in chosen[r]), tuple(int(data[r, k]) for k in chosen[r]),
                            tuple(states[r]), reasons[r])
        observed = float(data[r, available[r]].mean())
        replays.append(AdaptiveReplay(test=test, items_used=len(chosen[r]), available_items=int(counts[r]),
                                      predicted_accuracy=test.forecast.accuracy, observed_accuracy=observed,
                                      accuracy_error=test.forecast.accuracy - observed,
                                      full_theta=float(full_theta[r])))
    return replays
