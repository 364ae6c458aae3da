"""The two program shapes the built-in domains use, and the `context` input they all share.

Every program takes `context` (the assembled playbook, possibly empty) beside its task
inputs, so the context engine can feed any domain the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dspy

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
