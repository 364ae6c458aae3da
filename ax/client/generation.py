"""The contract between decoding and any backend: `Backend`, and the values a generation takes and returns.

The values (`GenerationRequest`, `GenerationParams`, `Generation`) are defined with the in-process
engine (ax/inference/generation.py), which fills them in without importing the client; they are
re-exported here with the protocol that takes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ax.inference.generation import ConstraintKind, Generation, GenerationParams, GenerationRequest

__all__ = ["Backend", "ConstraintKind", "Generation", "GenerationParams", "GenerationRequest"]


class Backend(Protocol):
    """Where completions come from: the in-process model or an OpenAI-compatible server.

    `model_directory` and `torch_model` serve LoRA training, which trains a fresh copy of the model
    read from its directory and targets its layers by name: only an in-process backend has them,
    a remote one raises AxError.
    """

    base_fingerprint: str
    answer_fingerprint: str  # what answers depend on: the base weights, and the dtype they compute in when not fp32
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
