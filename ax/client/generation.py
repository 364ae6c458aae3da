"""What one generation asks for and returns: the contract between decoding and any backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

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
    """Where completions come from: the in-process model or an OpenAI-compatible server.

    `model_directory` and `torch_model` serve LoRA training, which trains a fresh copy of the model
    read from its directory and targets its layers by name: only an in-process backend has them,
    a remote one raises AxError.
    """

    base_fingerprint: str
    tokenizer: Any  # the base model's (its chat template renders prompts; training counts tokens with it)

    @property
    def model_directory(self) -> Path: ...

    @property
    def torch_model(self) -> Any: ...

    def render(self, messages: list[dict[str, str]]) -> str: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    def adapter_fingerprint(self, adapter: str | None) -> str: ...

    def adapters(self) -> list[str]: ...

    def load_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None: ...

    def ensure_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None:
        """`load_adapter`, unless `name` already serves the adapter at `path`."""
        ...

    def unload_adapter(self, name: str) -> None: ...

    def close(self) -> None: ...
