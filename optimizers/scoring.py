"""Reading a metric's result as a number, and deciding which runs count as accepted.

Domain metrics return `dspy.Prediction(score=, feedback=)` for GEPA. Such a Prediction is
truthy even when its score is 0 (it is a non-empty mapping), so DSPy's `BootstrapFinetune`,
which keeps traces whose metric result is truthy, would train on every failure. `passing`
turns a feedback metric into the boolean one weight optimizers need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def score_of(result: Any) -> float:
    """The numeric score of a metric result: a number, a bool, or anything with a `score`."""
    if result is None:
        return 0.0
    if isinstance(result, (bool, int, float)):
        return float(result)
    score = result["score"] if hasattr(result, "keys") and "score" in result.keys() else getattr(result, "score", None)
    return float(score) if score is not None else 0.0


def passing(metric: Callable[..., Any], min_score: float = 1.0) -> Callable[..., bool]:
    """A metric that is True exactly when `metric` scores at least `min_score`.

    Use it as `dspy.BootstrapFinetune(metric=passing(domain.metric))` so that only traces the
    domain metric accepts become training data.
    """

    def accepted(gold: Any, pred: Any, trace: Any = None, *args: Any, **kwargs: Any) -> bool:
        return score_of(metric(gold, pred, trace)) >= min_score

    accepted.__name__ = f"passing_{getattr(metric, '__name__', 'metric')}"
    return accepted
