"""What one generation asks for and returns: the contract between decoding and any backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

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


class Backend(Protocol):
    """Where completions come from: the in-process model or an OpenAI-compatible server."""

    base_fingerprint: str

    def render(self, messages: list[dict[str, str]]) -> str: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def adapter_fingerprint(self, adapter: str | None) -> str: ...

    def adapters(self) -> list[str]: ...

    def close(self) -> None: ...
