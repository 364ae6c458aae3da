"""Computerized adaptive testing: score a configuration on a fraction of a calibrated pool.

Evaluating a configuration costs one model call (or program run) per item. With item
parameters known, each answer narrows the ability estimate, and the most informative next
item is the one whose difficulty sits near the current estimate (Fluid Benchmarking, arXiv
2509.11106, uses the same recipe).

What is reported is the accuracy the full evaluation would have given, so that is what the
test forecasts and stops on: the items answered count as answered, the others by their
expected score under the ability posterior, and the test stops once the forecast's standard
error (in accuracy, not ability) meets the goal, or at a budget of a quarter of the pool.

What that reaches (bench/adaptive_eval.py, simulated 2PL pools): at a quarter of 300 items
calibrated on 100 respondents, a mean error of 2.6 accuracy points against the full
evaluation, 2.3 with the true item parameters; at a quarter of 72 items, 4.9 (calibrated on
100) to 6.3 (on 20). Most of it is beyond any estimator: even with the true ability and item
parameters, the unasked items' own right/wrong chance leaves about 1.7 points at 300 items
and 3.3 to 3.4 at 72 (a quarter of the items asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

from ax.errors import AxError
from ax.evals.irt import ItemParameters, ability_posterior, item_information, response_probability
from ax.evals.responses import as_response_matrix

GOAL_FRACTION, GOAL_ERROR = 0.25, 0.02  # the issue: within 2 accuracy points using at most a quarter of the items
# A normal error's mean absolute value is sqrt(2/pi) (about 0.8) of its SD: stopping at this
# forecast SE aims the mean |error| at GOAL_ERROR rather than at an ability precision whose
# meaning in accuracy points depends on the pool.
TARGET_STANDARD_ERROR = GOAL_ERROR / math.sqrt(2 / math.pi)


def item_budget(pool_size: int, fraction: float = GOAL_FRACTION) -> int:
    """How many items ``fraction`` of the pool allows (at least one); by default the goal's quarter."""
    return max(1, math.floor(fraction * pool_size))


@dataclass(frozen=True)
class Forecast:
    """What the answers so far imply: ability (EAP and posterior SD) and the full-pool accuracy.

    ``accuracy`` is the posterior mean of the accuracy over every calibrated item of the pool;
    ``accuracy_standard_error`` its posterior SD, which counts both the unanswered items' own
    right/wrong chance and the ability's uncertainty, but takes the item parameters as exact:
    with items calibrated on few respondents the actual error is larger.
    """

    theta: float
    theta_standard_error: float
    accuracy: float
    accuracy_standard_error: float


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
    variance = posterior @ (p * (1 - p)).sum(axis=1) + posterior @ (expected_correct - mean) ** 2
    theta = float(posterior @ nodes)
    n = vector.size
    return Forecast(theta=theta, theta_standard_error=float(np.sqrt(posterior @ (nodes - theta) ** 2)),
                    accuracy=(float(np.nansum(vector)) + mean) / n,
                    accuracy_standard_error=float(np.sqrt(variance)) / n)


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
