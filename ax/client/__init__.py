"""The LM client: DSPy programs talk to a local (LoRA-adapted) model or a remote server through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ax.client.client import AxLM, Client


def LM(model: str | None = None, *, adapters: dict[str, str | Path] | None = None, device: str | None = None,
       dtype: str | None = None, cache: bool = True, cache_path: str | Path | None = None,
       max_batch_size: int = 16, **lm_kwargs: Any) -> AxLM:
    """A DSPy LM on a local model ('smollm2' by default, an HF directory, a .gguf file or a hub id).

    `adapters` maps names to PEFT adapter directories loaded onto the base model at once.
    """
    from ax.client.local import LocalBackend
    from ax.model import load_model

    loaded = load_model(model, device=device, dtype=dtype)
    backend = LocalBackend(loaded, max_batch_size=max_batch_size)
    client = Client(backend, model_name=loaded.name, cache=cache, cache_path=cache_path)
    for name, path in (adapters or {}).items():
        client.load_adapter(name, path)
    return client.lm(**lm_kwargs)


__all__ = ["LM", "AxLM", "Client"]
