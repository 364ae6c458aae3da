"""Computerized adaptive testing: score a configuration on a fraction of a calibrated pool.

Evaluating a configuration costs one model call (or program run) per item. With item
parameters known, each answer narrows the ability estimate, and the most informative next
item is the one whose difficulty sits near the current estimate. Stopping when the standard
error is small enough (or at a budget of items) typically reaches the full-length score with
a fraction of the items (Fluid Benchmarking, arXiv 2509.11106, uses the same recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

from ax.errors import AxError
from ax.evals.irt import ItemParameters, estimate_ability_map, item_information, predicted_accuracy
from ax.evals.responses import as_response_matrix


@dataclass(frozen=True)
class AdaptiveTest:
    """The items given in order, the answers, and the ability estimate after each answer."""

    items: tuple[int, ...]
    responses: tuple[int, ...]
    theta_path: tuple[float, ...]
    standard_error_path: tuple[float, ...]
    stop_reason: Literal["standard_error", "max_items", "pool_exhausted"]

    @property
    def theta(self) -> float:
        return self.theta_path[-1]

    @property
    def standard_error(self) -> float:
        return self.standard_error_path[-1]


def run_adaptive_test(respond: Callable[[int], int | bool], items: ItemParameters, *,
                      max_items: int = 50, target_standard_error: float = 0.3,
                      available: Sequence[int] | None = None, prior_mean: float = 0.0,
                      prior_sd: float = 1.0) -> AdaptiveTest:
    """Administer items one at a time by maximum Fisher information at the current MAP ability.

    ``respond(item_index)`` runs the configuration on that item and returns 1/True if it was
    correct; it is called only for the items chosen. ``available`` restricts the pool (by
    default every calibrated item). Stops once the MAP standard error is at most
    ``target_standard_error``, after ``max_items`` items, or when the pool runs out.
    """
    if max_items < 1:
        raise AxError(f"max_items = {max_items!r}: must be at least 1")
    if not target_standard_error > 0:
        raise AxError(f"target_standard_error = {target_standard_error!r}: must be positive")
    pool = np.flatnonzero(items.calibrated) if available is None else np.asarray(available, dtype=int)
    if pool.size and (pool.min() < 0 or pool.max() >= items.n_items):
        raise AxError(f"available item indices must lie in [0, {items.n_items}), got {pool.min()}..{pool.max()}")
    pool = pool[items.calibrated[pool]]
    remaining = np.zeros(items.n_items, dtype=bool)
    remaining[pool] = True

    chosen, answers, thetas, errors = [], [], [], []
    theta, stop_reason = prior_mean, "pool_exhausted"
    while remaining.any():
        information = np.where(remaining, item_information(theta, items)[0], -np.inf)
        item = int(np.argmax(information))
        answer = respond(item)
        if answer not in (0, 1):
            raise AxError(f"respond({item}) returned {answer!r}: expected 0/1 or a bool")
        remaining[item] = False
        chosen.append(item)
        answers.append(int(answer))
        estimate = estimate_ability_map(np.array(answers, dtype=float), items.take(chosen),
                                        prior_mean=prior_mean, prior_sd=prior_sd)
        theta = float(estimate.theta[0])
        thetas.append(theta)
        errors.append(float(estimate.standard_error[0]))
        if errors[-1] <= target_standard_error:
            stop_reason = "standard_error"
            break
        if len(chosen) >= max_items:
            stop_reason = "max_items"
            break
    if not chosen:
        raise AxError("no calibrated item is available to administer")
    return AdaptiveTest(tuple(chosen), tuple(answers), tuple(thetas), tuple(errors), stop_reason)


@dataclass(frozen=True)
class AdaptiveReplay:
    """An adaptive test replayed from a full-length evaluation, against that evaluation.

    Accuracies are over the ``available_items`` (answered in the full run and calibrated):
    ``predicted_accuracy`` is the IRT-expected accuracy at the adaptive ability estimate,
    ``observed_accuracy`` the share actually correct; ``accuracy_error`` is their difference.
    ``full_theta`` is the MAP ability from all available items, for comparison with
    ``test.theta``.
    """

    test: AdaptiveTest
    items_used: int
    available_items: int
    predicted_accuracy: float
    observed_accuracy: float
    accuracy_error: float
    full_theta: float


def replay_adaptive_test(full_responses, items: ItemParameters, *, max_items: int = 50,
                         target_standard_error: float = 0.3, prior_mean: float = 0.0,
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
    pool = items.take(available)
    predicted = predicted_accuracy(test.theta, pool)
    observed = float(vector[available].mean())
    full = estimate_ability_map(vector[available], pool, prior_mean=prior_mean, prior_sd=prior_sd)
    return AdaptiveReplay(test=test, items_used=len(test.items), available_items=int(available.size),
                          predicted_accuracy=predicted, observed_accuracy=observed,
                          accuracy_error=predicted - observed, full_theta=float(full.theta[0]))
