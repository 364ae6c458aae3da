"""The exact text the local model sees, shared by inference and LoRA training.

Inference renders DSPy's chat messages with the model's chat template (`render_chat`, defined with
the in-process engine in ax/inference/chat.py and re-exported here), then writes each output field
after its `[[ ## name ## ]]` marker. Training must present the same prompt and the same
completion, token for token, or an adapter learns a format it is never shown at inference.
"""

from __future__ import annotations

from typing import Any

from ax.inference.chat import render_chat

__all__ = ["COMPLETED_MARKER", "FIELD_HEADER", "FIELD_SEPARATOR", "completion_body", "completion_text", "field_header",
           "formatted_value", "render_chat", "training_pair"]

FIELD_HEADER = "[[ ## {name} ## ]]\n"
COMPLETED_MARKER = "[[ ## completed ## ]]"
FIELD_SEPARATOR = "\n\n"


def field_header(name: str) -> str:
    return FIELD_HEADER.format(name=name)


def completion_body(fields: list[tuple[str, str]]) -> str:
    """The completion so far: each finished field's marker and value."""
    return "".join(field_header(name) + value.strip() + FIELD_SEPARATOR for name, value in fields)


def completion_text(fields: list[tuple[str, str]]) -> str:
    """The assistant completion for already-formatted output values, ending with the completed marker."""
    return completion_body(fields) + COMPLETED_MARKER


def formatted_value(value: Any) -> str:
    """Format one output value the way DSPy's ChatAdapter does, so parsing round-trips."""
    from dspy.adapters.utils import format_field_value
    from dspy.signatures.field import OutputField

    return format_field_value(field_info=OutputField(), value=value)


def training_pair(tokenizer: Any, signature: Any, inputs: dict[str, Any], outputs: dict[str, Any],
                  demos: list[Any] | tuple = ()) -> tuple[str, str]:
    """(prompt, completion) for one example, identical to what the client sends and generates."""
    import dspy

    # The client reads its output schema from DSPy's own ChatAdapter prompt, so that adapter is the format.
    messages = dspy.ChatAdapter().format(signature, list(demos), inputs)
    fields = [(name, formatted_value(outputs[name])) for name in signature.output_fields]
    return render_chat(tokenizer, messages), completion_text(fields)
