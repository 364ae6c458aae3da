"""What one generation asks for and returns: the values decoding hands any backend and gets back.

The `Backend` protocol that takes them is the client's (ax/client/generation.py); they live here,
below it, so that the in-process engine can fill them in without importing the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConstraintKind = Literal["choice", "int", "float", "int_list", "float_list"]


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings for one segment; greedy unless temperature > 0."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    constraint: ConstraintKind | None = None
    choices: tuple[str, ...] = ()

    @property
    def sampled(self) -> bool:
        return self.temperature > 0


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class GenerationRequest:
    """One prompt to complete, for one adapter (None = the base model)."""

    prompt: str
    adapter: str | None
    params: GenerationParams = field(default_factory=GenerationParams)
