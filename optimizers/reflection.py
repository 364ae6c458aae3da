"""The reflection LM GEPA writes new instructions with, and the proposer that calls it.

Offline (the default) reflection runs on the task's own local model, on its base weights: an
adapter is trained to answer the task, not to write instructions. A user with an API key names
any litellm model instead ("openai/gpt-4.1-mini") or passes a configured `dspy.LM`.

The proposer is DSPy's built-in `InstructionProposer` with DSPy's ChatAdapter rather than its
default JSONAdapter: the ax client constrains decoding from ChatAdapter's field markers, so a
small local model always returns a parseable `new_instruction`, and for API models ChatAdapter
falls back to JSON by itself when a reply does not parse.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer


def resolve_reflection_lm(spec: str | dspy.BaseLM | None, task_lm: Any) -> dspy.BaseLM:
    """A reflection LM of its own (a fresh `history`, so its calls can be counted apart)."""
    if spec is None:
        base = task_lm.with_adapter(None) if hasattr(task_lm, "with_adapter") else task_lm
        return base.copy()
    if isinstance(spec, str):
        return dspy.LM(spec, temperature=1.0)
    return spec.copy()


def instruction_proposer() -> InstructionProposer:
    return InstructionProposer(adapter=dspy.ChatAdapter())
