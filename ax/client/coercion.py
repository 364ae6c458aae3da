"""Turning a generated structured value (a list, a dict) into one DSPy's parser accepts.

Choices and numbers are constrained while decoding; structured values are generated freely and
repaired afterwards against the field's Python type, as DSPy's prompt names it
("list[str]", "dict[str, int]"). Only builtin container and scalar types are rebuilt this way;
any other type text (a user's pydantic model) keeps the model's own text.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

import json_repair
from pydantic import TypeAdapter, ValidationError

# `Any` too: dspy.ReAct's tool arguments are typed "dict[str, Any]".
_TYPE_NAMES = {"list": list, "dict": dict, "str": str, "int": int, "float": float, "bool": bool, "Any": Any}
_TYPE_TEXT = re.compile(r"^[\w\[\], ]+$")


def builtin_type(type_text: str | None) -> Any | None:
    """The Python type for a type text made only of builtin names, else None."""
    if not type_text or not _TYPE_TEXT.match(type_text):
        return None
    try:
        return eval(type_text, {"__builtins__": {}}, _TYPE_NAMES)  # noqa: S307 - names restricted above
    except Exception:
        return None


def _coerce_item(annotation: Any, item: Any) -> Any:
    if annotation is str and not isinstance(item, str):
        item = json.dumps(item) if isinstance(item, (dict, list)) else str(item)
    return TypeAdapter(annotation).validate_python(item)


def coerce_structured(type_text: str | None, text: str) -> str:
    annotation = builtin_type(type_text)
    if annotation is None:
        return text
    candidate = json_repair.loads(text) if text.strip() else None
    try:
        return json.dumps(TypeAdapter(annotation).validate_python(candidate))
    except ValidationError:
        pass
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        items = candidate if isinstance(candidate, list) else [s.strip() for s in re.split(r"[\n,;]", text) if s.strip()]
        kept = []
        for item in items:
            try:
                kept.append(_coerce_item(args[0] if args else str, item))
            except ValidationError:
                continue  # an element of the wrong type is left out; the list itself still parses
        return json.dumps(kept)
    if origin is dict or annotation is dict:
        return json.dumps({})
    return text
