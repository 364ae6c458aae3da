"""Model-assisted sampling: a configuration's accuracy on every item from random items, with the answers of
similar respondents as the predictor (the difference estimator of survey sampling).

Why beside IRT adaptive testing (``ax.evals.adaptive``): on real response matrices of the embedded model
(bench/adaptive_real.py) the one-ability item model did not fit (the model's variants differ in which
label they favour, not along one ability) and its forecasts landed further off than plain random items.
Here the items asked are a random sample, so the estimate stays unbiased whatever the predictor; the
predictor (the pool's respondents weighted by how often they agree with this one on the items asked,
each residual computed without its own item) only shrinks the variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ax.errors import AxError
from ax.evals.adaptive import item_budget

# Weights exp(SHARPNESS * share of asked items answered alike): on the real pool of bench/adaptive_real.py
# values from 20 to 200 did alike, 0 (the pool's plain mean) clearly worse.
SHARPNESS = 20.0
MIN_ITEMS = 30  # the residuals' spread, hence the SE that stops the test, needs some items first


@dataclass(frozen=True)
class SampledEstimate:
    """Accuracy over every item, its standard error, and the part of it the unasked items' own chance makes."""

    accuracy: float
    standard_error: float
    unasked_standard_error: float


def _weights(agreement: np.ndarray, asked: int) -> np.ndarray:
    z = SHARPNESS * agreement / max(asked, 1)
    w = np.exp(z - z.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def neighbour_estimate(asked: np.ndarray, answers: np.ndarray, pool: np.ndarray) -> SampledEstimate:
    """The difference estimate from ``answers`` (0/1) on the random items ``asked`` of ``pool``'s columns.

    ``pool`` holds the other respondents' 0/1 answers to every item (respondents x items). The SE
    treats the asked items as a simple random sample of all.
    """
    asked, answers = np.asarray(asked, dtype=int), np.asarray(answers, dtype=float)
    n, k = pool.shape[1], asked.size
    if k == 0 or pool.shape[0] == 0:
        raise AxError("neighbour_estimate needs at least one asked item and one pool respondent")
    alike = (pool[:, asked] == answers).astype(float)  # respondents x asked
    agreement = alike.sum(axis=1)
    predicted = _weights(agreement, k) @ pool
    if k > 1:  # each asked item predicted without itself, or the residuals would be too small
        held_out = _weights(agreement[None, :] - alike.T, k - 1)  # asked x respondents
        residual = answers - np.sum(held_out * pool[:, asked].T, axis=1)
    else:
        residual = answers - predicted[asked]
    unasked = np.ones(n, dtype=bool)
    unasked[asked] = False
    rest = n - k
    accuracy = (answers.sum() + predicted[unasked].sum() + rest * residual.mean()) / n
    spread = float(residual.std(ddof=1)) if k > 1 else 0.5
    standard_error = rest / n * spread * math.sqrt(1 / k + 1 / rest) if rest else 0.0
    p = np.clip(predicted[unasked], 0.0, 1.0)  # weights summing to 1 can leave 1 + 1e-16, a negative variance
    return SampledEstimate(accuracy=float(np.clip(accuracy, 0.0, 1.0)), standard_error=standard_error,
                           unasked_standard_error=math.sqrt(float(np.sum(p * (1 - p)))) / n)


@dataclass(frozen=True)
class SampledTest:
    items: tuple[int, ...]
    responses: tuple[int, ...]
    estimate: SampledEstimate
    stop_reason: Literal["standard_error", "max_items", "pool_exhausted"]


def item_order(n_items: int, key: str) -> np.ndarray:
    """A random order of the items, fixed by ``key`` (a configuration's name), so a rerun asks the same items."""
    seed = int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "little") ^ len(key)
    return np.random.default_rng(seed).permutation(n_items)


def run_sampled_test(respond: Callable[[int], int | bool], pool: np.ndarray, order: np.ndarray, *,
                     max_items: int | None = None, target_standard_error: float) -> SampledTest:
    """Ask items in ``order`` until the estimate's SE reaches the target (after ``MIN_ITEMS``), the budget
    (default a quarter of the items) is spent, or the items run out."""
    n = pool.shape[1]
    budget = item_budget(n) if max_items is None else max_items
    if budget < 1 or not target_standard_error > 0:
        raise AxError(f"max_items = {max_items!r}, target_standard_error = {target_standard_error!r}: need at least "
                      "one item and a positive target")
    answers: list[int] = []
    while True:
        answer = respond(int(order[len(answers)]))
        if answer not in (0, 1):
            raise AxError(f"respond({order[len(answers)]}) returned {answer!r}: expected 0/1 or a bool")
        answers.append(int(answer))
        k = len(answers)
        if k < min(MIN_ITEMS, budget, n):
            continue
        estimate = neighbour_estimate(order[:k], np.array(answers), pool)
        stop = ("pool_exhausted" if k == n else "standard_error" if estimate.standard_error <= target_standard_error
                else "max_items" if k >= budget else None)
        if stop:
            return SampledTest(tuple(int(i) for i in order[:k]), tuple(answers), estimate, stop)
