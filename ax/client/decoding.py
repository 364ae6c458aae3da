"""Field-by-field decoding: the client writes DSPy's field markers itself and the model only fills values.

A 135M model asked to follow DSPy's `[[ ## field ## ]]` format forgets markers, invents fields
and stops early. Here the markers are prefilled, each value is generated up to the next marker
under its type's constraint (one of the choices, a number), and the completed marker closes the
answer, so DSPy's ChatAdapter always finds every output field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ax.client.coercion import coerce_structured
from ax.client.generation import Backend, GenerationParams, GenerationRequest
from ax.client.prompting import completion_body, completion_text, field_header
from ax.client.schema import FieldSpec

_NUMBER = {"int": re.compile(r"-?\d+"), "float": re.compile(r"-?\d+(?:\.\d+)?")}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # the comma of "4,310", not of "3, 4" or "1,5"
# A small model that has seen the markers imitates them badly ("[## completed ## ]]", "[##\n\n##"):
# a text value ends at anything that starts like a marker, or it loops on it to its token budget.
_MARKER_STOP = ("[[", "[#")
_CONSTRAINED = ("choice", "int", "float", "int_list", "float_list")
_STRUCTURED = ("json", "int_list", "float_list")  # values DSPy parses as Python/JSON literals


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

    def params_for(self, spec: FieldSpec | None, spent: int) -> GenerationParams:
        kind = spec.kind if spec else "text"
        if kind == "choice":
            budget = 64
        elif kind in ("int", "float"):
            budget = self.max_number_tokens
        else:
            budget = self.max_text_tokens
        if self.max_tokens is not None:
            budget = max(1, min(budget, self.max_tokens - spent))
        stop = self.stop + _MARKER_STOP if spec is not None and kind in ("text", *_STRUCTURED) else self.stop
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


@dataclass
class Decoded:
    text: str
    prompt_tokens: int
    completion_tokens: int


def decode(backend: Backend, messages: list[dict[str, str]], fields: list[FieldSpec], adapter: str | None,
           settings: DecodingSettings) -> Decoded:
    """Complete a chat: field by field when the output fields are known, else as free text."""
    prompt = backend.render(messages)
    if not fields:
        generation = backend.generate(GenerationRequest(prompt, adapter, settings.params_for(None, 0)))
        return Decoded(generation.text, generation.prompt_tokens, generation.completion_tokens)
    values: list[tuple[str, str]] = []
    prompt_tokens = completion_tokens = 0
    for spec in fields:
        segment = prompt + completion_body(values) + field_header(spec.name)
        generation = backend.generate(GenerationRequest(segment, adapter, settings.params_for(spec, completion_tokens)))
        prompt_tokens = max(prompt_tokens, generation.prompt_tokens)
        completion_tokens += generation.completion_tokens
        values.append((spec.name, clean_value(spec, generation.text)))
    return Decoded(completion_text(values), prompt_tokens, completion_tokens)
