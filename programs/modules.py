"""The two program shapes the built-in domains use, the `context` input they all share, and predictors by name.

Every program takes `context` (the assembled playbook, possibly empty) beside its task
inputs, so the context engine can feed any domain the same way. A configuration names
predictors (for instructions, or for an adapter each); `predictors_named` checks those names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import dspy

from ax.errors import AxError

CONTEXT = "context"
CONTEXT_DESC = "Playbook for this task: strategies, rules, formulas and common mistakes. May be empty."


def context_field() -> Any:
    return dspy.InputField(desc=CONTEXT_DESC)


class PredictProgram(dspy.Module):
    """One predictor: the signature is the whole task (classification, extraction)."""

    signature: ClassVar[type[dspy.Signature]]

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(self.signature)

    def forward(self, context: str = "", **inputs) -> dspy.Prediction:
        return self.predict(context=context, **inputs)


class ExtractThenCompute(dspy.Module):
    """The LM reads the figures, Python does the arithmetic.

    Small models copy numbers out of text far more reliably than they calculate, and the
    extracted figures stay in the prediction so metric feedback can point at the wrong one.
    """

    extraction: ClassVar[type[dspy.Signature]]

    def __init__(self) -> None:
        super().__init__()
        self.extract = dspy.Predict(self.extraction)

    def compute(self, figures: dspy.Prediction) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, context: str = "", **inputs) -> dspy.Prediction:
        figures = self.extract(context=context, **inputs)
        return dspy.Prediction(**figures.toDict(), **self.compute(figures))


def program_inputs(program: dspy.Module) -> tuple[str, ...]:
    """Task inputs of a program: its predictors' inputs that no other predictor produces, minus `context`."""
    signatures = [predictor.signature for predictor in program.predictors()]
    produced = {name for signature in signatures for name in signature.output_fields}
    names: list[str] = []
    for signature in signatures:
        for name in signature.input_fields:
            if name != CONTEXT and name not in produced and name not in names:
                names.append(name)
    return tuple(names)


def predictors_named(program: dspy.Module, names: Iterable[str], asker: str) -> dict[str, Any]:
    """``program``'s predictors by name; a name it lacks is an AxError saying ``asker`` (who named it) named it."""
    predictors = dict(program.named_predictors())
    unknown = sorted(set(names) - set(predictors))
    if unknown:
        raise AxError(f"{asker} {unknown}, but the program's predictors are {sorted(predictors)}")
    return predictors


def set_predictor_lms(program: dspy.Module, lms: Mapping[str, Any], owner: str) -> None:
    """Each named predictor answers with its LM (DSPy prefers a predictor's LM to the context's)."""
    predictors = predictors_named(program, lms, f"{owner} has adapters for predictors")
    for name, lm in lms.items():
        predictors[name].lm = lm
