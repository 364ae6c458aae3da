"""The output fields a DSPy call expects, read from the prompt DSPy's ChatAdapter wrote.

ChatAdapter closes every request with one line naming the output fields in order, with their
Python types: "Respond with the corresponding output fields, starting with the field
`[[ ## label ## ]]` (must be formatted as a valid Python Literal['a', 'b']), then ...". Reading
that line lets the client decode each field under its own constraint with DSPy's default
adapter, unchanged, so a user needs no special adapter for output to always parse.
"""

from __future__ import annotations

import ast
import re
from typing import Literal

from pydantic import BaseModel

_INSTRUCTION = "Respond with the corresponding output fields"
_FIELD = re.compile(r"`\[\[ ## (\w+) ## \]\]`(?: \(must be formatted as a valid Python (.+?)\))?(?=, then |, and then |$)")


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


def output_fields(messages: list[dict[str, str]]) -> list[FieldSpec]:
    """The output fields named by the last user message, or [] when it is not a ChatAdapter prompt."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    start = user.rfind(_INSTRUCTION)
    if start < 0:
        return []
    line = user[start:].split("\n", 1)[0].rstrip(".")
    return [_spec_for(name, type_text or None) for name, type_text in _FIELD.findall(line) if name != "completed"]
