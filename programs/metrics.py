"""Metric builders that score one gold field and say why, in the form `dspy.GEPA` reads.

Every metric has the signature `(gold, pred, trace=None, pred_name=None, pred_trace=None)`
and returns `dspy.Prediction(score=float, feedback=str)`. GEPA's reflection model only sees
the feedback text, so a wrong answer's feedback names the expected value, what came back,
and the example's `explanation` (the cue in the text that decides the answer). A prediction
that is missing, of the wrong type or unparseable scores 0 with feedback: metrics never
raise on model output.

`score_of` reads any metric result as a number. Such a Prediction is truthy even when its
score is 0 (it is a non-empty mapping), so DSPy's `BootstrapFinetune`, which keeps traces whose
metric result is truthy, would train on every failure; `passing` turns a feedback metric into
the boolean one weight optimizers need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import dspy

Metric = Callable[..., dspy.Prediction]
_MISSING = object()


def read_field(obj: Any, field: str) -> Any:
    """`obj[field]` for Examples, Predictions and dicts, else the attribute; `_MISSING` if absent.

    Item access comes first because `Example.values` and friends are methods, not fields.
    """
    try:
        if isinstance(obj, (Mapping, dspy.Example)):
            return obj.get(field, _MISSING)
        return getattr(obj, field, _MISSING)
    except Exception:  # an arbitrary object's __getattr__ may raise anything
        return _MISSING


def normalize_label(value: Any) -> str:
    """'Order Status.' and "order_status" are the same label."""
    text = str(value).strip().strip("'\"`").strip().rstrip(".").casefold()
    return re.sub(r"[\s\-]+", "_", text)


def normalize_text(value: Any) -> str:
    """Exact match up to case, spacing, punctuation and a leading article: 'MATH101' == 'math 101'."""
    text = re.sub(r"^(the|a|an)\s+", "", str(value).strip().casefold())
    return re.sub(r"[\W_]", "", text)  # \W is Unicode-aware: accented and non-Latin text survives


def parse_number(value: Any) -> float | None:
    """A finite float from 1.5, '1,250', '$3.2', '12%' or '1.5x'; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = re.sub(r"[%x]$", "", re.sub(r"[\s,$€£]", "", str(value).strip().casefold()))
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _why(gold: Any) -> str:
    explanation = read_field(gold, "explanation")
    return f" Why: {explanation}" if explanation not in (_MISSING, None, "") else ""


def _details(gold: Any, pred: Any, fields: Sequence[str]) -> str:
    """Intermediate values (extracted figures) side by side, so feedback reaches the step that erred."""
    parts = []
    for field in fields:
        expected, got = read_field(gold, field), read_field(pred, field)
        if expected is _MISSING:
            continue
        shown = "missing" if got is _MISSING else repr(got)
        parts.append(f"{field} expected {expected!r}, got {shown}")
    return f" Intermediate values: {'; '.join(parts)}." if parts else ""


Judge = Callable[[Any, Any], tuple[float, str]]


def _field_judge(field: str, same: Callable[[Any, Any], bool | None], describe: str,
                 details: Sequence[str]) -> Judge:
    """Score one field with `same(expected, got)`: True, False, or None when `got` is unreadable."""

    def judge(gold, pred) -> tuple[float, str]:
        expected, got = read_field(gold, field), read_field(pred, field)
        extra = _details(gold, pred, details) if details else ""
        if got is _MISSING or got is None:
            return 0.0, f"The prediction has no `{field}`; expected {expected!r}.{extra}"
        try:
            verdict = same(expected, got)
        except Exception:  # an exotic predicted type must cost the score, not the run
            verdict = None
        if verdict is None:
            return 0.0, f"`{field}` = {got!r} is not {describe}; expected {expected!r}.{extra}"
        if verdict:
            return 1.0, f"Correct: `{field}` = {expected!r}."
        return 0.0, f"Wrong `{field}`: expected {expected!r}, got {got!r}.{extra}"

    return judge


def _metric(judges: Sequence[Judge], name: str) -> Metric:
    """A GEPA metric averaging `judges`; the example's explanation is appended once."""

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
        verdicts = [judge(gold, pred) for judge in judges]
        score = sum(score for score, _ in verdicts) / len(verdicts)
        feedback = " ".join(message for _, message in verdicts) + _why(gold)
        return dspy.Prediction(score=float(score), feedback=feedback)

    metric.__name__ = name
    metric.judges = tuple(judges)
    return metric


def _same_after(normalize: Callable[[Any], str]) -> Callable[[Any, Any], bool | None]:
    def same(expected, got):
        if not isinstance(got, (str, int, float)) or isinstance(got, bool):
            return None
        return normalize(got) == normalize(expected)

    return same


def label_metric(field: str, *, details: Sequence[str] = ()) -> Metric:
    """Exact label match up to case, spacing, quotes and '_' vs ' '."""
    return _metric([_field_judge(field, _same_after(normalize_label), "a label", details)],
                   f"{field}_label_metric")


def text_metric(field: str, *, details: Sequence[str] = ()) -> Metric:
    """Normalized exact match for extracted strings (see `normalize_text`)."""
    return _metric([_field_judge(field, _same_after(normalize_text), "a piece of text", details)],
                   f"{field}_text_metric")


def numeric_metric(field: str, *, abs_tol: float = 0.0, rel_tol: float = 0.0,
                   details: Sequence[str] = ()) -> Metric:
    """Numbers equal within `abs_tol` or `rel_tol` of the gold value; '1,200' and '$1200' parse."""

    def same(expected, got):
        number, target = parse_number(got), parse_number(expected)
        if number is None or target is None:
            return None
        return math.isclose(number, target, abs_tol=abs_tol + 1e-9, rel_tol=rel_tol)

    return _metric([_field_judge(field, same, "a number", details)], f"{field}_numeric_metric")


def mean_metric(*metrics: Metric) -> Metric:
    """Average of several metrics built here, for tasks with more than one output field."""
    judges = [judge for metric in metrics for judge in metric.judges]
    return _metric(judges, "_and_".join(metric.__name__ for metric in metrics))


class Step(NamedTuple):
    """One step of a multi-step program: its name, the metric of the value it produces, and the
    predictors whose instructions decide that value (an LM-free step, e.g. retrieval, names the
    predictor that wrote its query)."""

    name: str
    metric: Metric
    predictors: tuple[str, ...] = ()


def step_metric(*steps: Step) -> Metric:
    """A metric over a multi-step program: the mean of its steps' scores, with feedback naming the step.

    Every line of feedback starts with "Step <name>:", so GEPA's reflection reads which step went
    wrong. When GEPA asks about one predictor (`pred_name`), the feedback holds only the steps that
    predictor decides; the score stays the whole program's. `metric.steps` lets a report compute
    per-step accuracy from stored outputs (`step_scores`).
    """

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
        verdicts = [(step, step.metric(gold, pred)) for step in steps]
        score = sum(float(verdict.score) for _, verdict in verdicts) / len(verdicts)
        own = [(step, v) for step, v in verdicts if pred_name is not None and _decides(step, pred_name)]
        shown = own or verdicts
        feedback = " ".join(f"Step {step.name}: {verdict.feedback}" for step, verdict in shown)
        return dspy.Prediction(score=float(score), feedback=feedback)

    metric.__name__ = "steps_" + "_".join(step.name for step in steps)
    metric.steps = tuple(steps)
    return metric


def _decides(step: Step, pred_name: str) -> bool:
    # GEPA names a predictor by its path in the program ("program.classify" under a playbook wrapper).
    return any(pred_name == name or pred_name.endswith("." + name) for name in step.predictors)


def step_scores(metric: Metric, gold: Any, output: Any) -> dict[str, float]:
    """Each step's score for one stored output (empty for a metric without steps)."""
    return {step.name: float(step.metric(gold, output).score) for step in getattr(metric, "steps", ())}


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
