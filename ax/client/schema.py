"""The output fields a DSPy call expects, read from the prompt DSPy's adapter wrote.

ChatAdapter closes every request with one line naming the output fields in order, with their
Python types: "Respond with the corresponding output fields, starting with the field
`[[ ## label ## ]]` (must be formatted as a valid Python Literal['a', 'b']), then ...". Reading
that line lets the client decode each field under its own constraint with DSPy's default
adapter, unchanged, so a user needs no special adapter for output to always parse.

JSONAdapter (GEPA's default instruction proposer uses it, and ChatAdapter falls back to it) closes
with "Respond with a JSON object in the following order of fields: `label` (must be formatted as
a valid Python ...), then ...": the same fields, answered as one JSON object instead of markers.
"""

from __future__ import annotations

import ast
import re
from typing import Literal

from pydantic import BaseModel

Layout = Literal["chat", "json"]  # ChatAdapter's `[[ ## field ## ]]` markers, or JSONAdapter's one JSON object
_TYPE = r"(?: \(must be formatted as a valid Python (.+?)\))?(?=, then |, and then |$)"
# Each layout's closing instruction and how it names one field, keyed by the layout decoding writes.
_LAYOUTS = {
    "chat": ("Respond with the corresponding output fields", re.compile(r"`\[\[ ## (\w+) ## \]\]`" + _TYPE)),
    "json": ("Respond with a JSON object in the following order of fields", re.compile(r"`(\w+)`" + _TYPE)),
}


class FieldSpec(BaseModel):
    """One output field and how its value is decoded."""

    name: str
    kind: Literal["text", "choice", "int", "float", "int_list", "float_list", "json"] = "text"
    choices: list[str] = []
    type_text: str | None = None


def _spec_for(name: str, type_text: str | None) -> FieldSpec:
    if type_text is None or type_text == "str":
        return FieldSpec(name=name)
    if type_text == "int":
        return FieldSpec(name=name, kind="int")
    if type_text == "float":
        return FieldSpec(name=name, kind="float")
    if type_text in ("list[int]", "list[float]"):
        # Its own kind, not plain JSON: number lists decode under a constraint of their own.
        return FieldSpec(name=name, kind=f"{type_text[5:-1]}_list", type_text=type_text)
    if type_text == "bool":
        return FieldSpec(name=name, kind="choice", choices=["True", "False"])
    literal = re.fullmatch(r"Literal\[(.*)\]", type_text)
    if literal:
        try:
            values = ast.literal_eval(f"[{literal.group(1)}]")
        except (ValueError, SyntaxError):
            values = None
        if values and all(isinstance(v, (str, int, float, bool)) for v in values):
            return FieldSpec(name=name, kind="choice", choices=[str(v) for v in values])
    return FieldSpec(name=name, kind="json", type_text=type_text)


class OutputSchema(BaseModel):
    """The output fields of one call and the layout (ChatAdapter markers or a JSON object) to write them in."""

    layout: Layout = "chat"
    fields: list[FieldSpec] = []


def output_schema(messages: list[dict[str, str]]) -> OutputSchema:
    """The schema named by the last user message; no fields when no DSPy adapter wrote it."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    # The instruction written last is the one this request ends with.
    start, layout = max((user.rfind(instruction), layout) for layout, (instruction, _) in _LAYOUTS.items())
    if start < 0:
        return OutputSchema()
    line = user[start:].split("\n", 1)[0].rstrip(".")
    fields = [_spec_for(name, type_text or None) for name, type_text in _LAYOUTS[layout][1].findall(line)
              if name != "completed"]
    return OutputSchema(layout=layout, fields=fields)


def output_fields(messages: list[dict[str, str]]) -> list[FieldSpec]:
    """The output fields named by the last user message, or [] when no DSPy adapter wrote it."""
    return output_schema(messages).fields
