"""Field-by-field decoding: the client writes DSPy's field markers itself and the model only fills values.

A 135M model asked to follow DSPy's `[[ ## field ## ]]` format forgets markers, invents fields
and stops early. Here the markers are prefilled, each value is generated up to the next marker
under its type's constraint (one of the choices, a number), and the completed marker closes the
answer, so DSPy's ChatAdapter always finds every output field.

A JSONAdapter prompt gets the same treatment in its own layout: the client writes the braces and
each `"name": ` key, the model fills each value, and the answer is a JSON object that adapter reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ax.client.coercion import coerce_structured
from ax.client.generation import Backend, GenerationParams, GenerationRequest
from ax.client.prompting import completion_body, completion_text, field_header
from ax.client.schema import FieldSpec, Layout

_NUMBER = {"int": re.compile(r"-?\d+"), "float": re.compile(r"-?\d+(?:\.\d+)?")}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # the comma of "4,310", not of "3, 4" or "1,5"
# A small model that has seen the markers imitates them badly ("[## completed ## ]]", "[##\n\n##"):
# a text value ends at anything that starts like a marker, or it loops on it to its token budget.
_MARKER_STOP = ("[[", "[#")
_CONSTRAINED = ("choice", "int", "float", "int_list", "float_list")
_STRUCTURED = ("json", "int_list", "float_list")  # values DSPy parses as Python/JSON literals
# In a JSON object a quoted value ends at its closing quote and a bare one at the next key or the
# closing brace; a quote inside an instruction is no end, a quote before a line break or brace is.
_JSON_STOP = {"text": ('"\n', '",\n', '"}'), "structured": (',\n  "', "\n}")}
_QUOTED = ("text", "choice")  # JSON strings: the client opens the quote, the model writes the inside


@dataclass(frozen=True)
class DecodingSettings:
    """Per-field token budgets and sampling, from the request and the client's defaults."""

    max_text_tokens: int = 160
    max_number_tokens: int = 12
    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def params_for(self, spec: FieldSpec | None, spent: int, layout: Layout = "chat") -> GenerationParams:
        kind = spec.kind if spec else "text"
        if kind == "choice":
            budget = 64
        elif kind in ("int", "float"):
            budget = self.max_number_tokens
        else:
            budget = self.max_text_tokens
        if self.max_tokens is not None:
            budget = max(1, min(budget, self.max_tokens - spent))
        stop = self.stop
        if spec is not None and kind in ("text", *_STRUCTURED):
            stop = stop + (_MARKER_STOP if layout == "chat" else _JSON_STOP["text" if kind == "text" else "structured"])
        if kind in ("int", "float"):
            stop = stop + ("\n",)
        constraint = kind if kind in _CONSTRAINED else None
        return GenerationParams(
            max_new_tokens=budget, temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=stop,
            constraint=constraint,
            choices=tuple(spec.choices) if spec and kind == "choice" else (),
        )


def clean_value(spec: FieldSpec, text: str) -> str:
    value = text.strip()
    if spec.kind in _STRUCTURED:
        return coerce_structured(spec.type_text, value)
    if spec.kind in _NUMBER:
        match = _NUMBER[spec.kind].search(_THOUSANDS.sub("", value))
        # Local decoding guarantees a digit; a remote server that ignored the constraint keeps its text.
        return match.group(0) if match else value
    return value


def json_value(spec: FieldSpec, text: str) -> str:
    """One generated value as the JSON literal JSONAdapter reads back: quoted text, bare numbers and lists."""
    if spec.kind == "text":
        inside = text.strip().removesuffix('"')  # the model closed the quote itself, then stopped
        try:
            value = json.loads(f'"{inside}"', strict=False)  # JSON escapes the model wrote (\n, \")
        except ValueError:
            value = inside
        return json.dumps(value, ensure_ascii=False)
    value = clean_value(spec, text)
    if spec.kind not in _QUOTED:
        try:
            json.loads(value)
            return value
        except ValueError:
            pass  # a remote server's unconstrained number, a user type's free text: DSPy parses the string
    return json.dumps(value, ensure_ascii=False)


def _json_body(values: list[tuple[str, str]]) -> str:
    # The same layout as JSONAdapter's own demos (json.dumps with indent=2), so the model sees one format.
    return "{" + ",".join(f"\n  {json.dumps(name)}: {value}" for name, value in values)


def _opening(layout: Layout, values: list[tuple[str, str]], spec: FieldSpec) -> str:
    """The completion written before `spec`'s value: finished fields, then `spec`'s marker or key."""
    if layout == "chat":
        return completion_body(values) + field_header(spec.name)
    return _json_body(values) + ("," if values else "") + f"\n  {json.dumps(spec.name)}: " + (
        '"' if spec.kind in _QUOTED else "")


def _finished(layout: Layout, spec: FieldSpec, text: str) -> str:
    return clean_value(spec, text) if layout == "chat" else json_value(spec, text)


def _closing(layout: Layout, values: list[tuple[str, str]]) -> str:
    return completion_text(values) if layout == "chat" else _json_body(values) + "\n}"


@dataclass
class Decoded:
    text: str
    prompt_tokens: int
    completion_tokens: int


def decode(backend: Backend, messages: list[dict[str, str]], fields: list[FieldSpec], adapter: str | None,
           settings: DecodingSettings, layout: Layout = "chat") -> Decoded:
    """Complete a chat: field by field when the output fields are known, else as free text.

    `layout` is the schema's: "chat" writes ChatAdapter's markers, "json" one JSON object.
    """
    prompt = backend.render(messages)
    if not fields:
        generation = backend.generate(GenerationRequest(prompt, adapter, settings.params_for(None, 0)))
        return Decoded(generation.text, generation.prompt_tokens, generation.completion_tokens)
    values: list[tuple[str, str]] = []
    prompt_tokens = completion_tokens = 0
    for spec in fields:
        segment = prompt + _opening(layout, values, spec)
        params = settings.params_for(spec, completion_tokens, layout)
        generation = backend.generate(GenerationRequest(segment, adapter, params))
        prompt_tokens = max(prompt_tokens, generation.prompt_tokens)
        completion_tokens += generation.completion_tokens
        values.append((spec.name, _finished(layout, spec, generation.text)))
    return Decoded(_closing(layout, values), prompt_tokens, completion_tokens)
