"""The reflection LM GEPA writes new instructions with, and the proposer that calls it.

Offline (the default) reflection runs on the task's own local model, on its base weights: an
adapter is trained to answer the task, not to write instructions. A user with an API key names
any litellm model instead ("openai/gpt-4.1-mini") or passes a configured `dspy.LM`.

A local reflection model is marked as such (`is_local_reflection`): GEPA then proposes with
ax's grounded proposer (optimizers/proposer.py), since a small model rarely rewrites a whole
instruction usefully. A named model gets DSPy's built-in `InstructionProposer`, with DSPy's
ChatAdapter rather than its default JSONAdapter: ChatAdapter falls back to JSON by itself when
a reply does not parse, and through the ax client it decodes constrained to its field markers.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer


_LOCAL = "ax_local_reflection"  # an attribute, so that the LM's copies (which share its __dict__ values) keep it


def resolve_reflection_lm(spec: str | dspy.BaseLM | None, task_lm: Any) -> dspy.BaseLM:
    """A reflection LM of its own (a fresh `history`, so its calls can be counted apart).

    None: the task's own model on its base weights, marked local for `is_local_reflection`.
    """
    if spec is None:
        base = task_lm.with_adapter(None) if hasattr(task_lm, "with_adapter") else task_lm
        local = base.copy()
        setattr(local, _LOCAL, True)
        return local
    if isinstance(spec, str):
        return dspy.LM(spec, temperature=1.0)
    return spec.copy()


def is_local_reflection(lm: Any) -> bool:
    """Whether `lm` is the task's own model resolved as the reflection LM (no model was named)."""
    return getattr(lm, _LOCAL, False) is True


def instruction_proposer() -> InstructionProposer:
    return InstructionProposer(adapter=dspy.ChatAdapter())
