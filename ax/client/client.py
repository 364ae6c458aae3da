"""The client: one backend (local model or remote server), its cache and usage log, and DSPy LMs on it.

    lm = ax.LM()                                   # embedded SmolLM2, in process
    lm.client.load_adapter("legal", "path/to/adapter")
    dspy.configure(lm=lm)
    with lm.using_adapter("legal"): ...            # or: dspy.context(lm=lm.with_adapter("legal"))

    with ax.LM() as lm: ...                        # closes the client on leaving (else it closes at exit)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dspy

from ax.client.cache import ResponseCache
from ax.client.engine import AxEngine
from ax.client.generation import Backend
from ax.client.usage import UsageLog
from ax.adapter_store import adapter_fingerprint
from ax.model import cache_dir


class Client:
    """Shared state behind every LM view: the backend, the response cache, the usage log."""

    def __init__(self, backend: Backend, *, model_name: str, cache: bool = True,
                 cache_path: str | Path | None = None, max_field_tokens: int = 160, structured: bool = True):
        self.backend = backend
        # structured=False sends the whole completion to the model unguided, as a plain server
        # would; it exists to measure what the field-by-field decoding saves DSPy from.
        self.structured = structured
        self.model_name = model_name
        self.max_field_tokens = max_field_tokens
        enabled = cache and os.environ.get("AX_NO_CACHE", "") in ("", "0")
        self.cache = ResponseCache(cache_path or cache_dir() / "responses", enabled=enabled)
        self.usage = UsageLog()

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def base_fingerprint(self) -> str:
        """What identifies the base model's weights (adapters and saved configurations record it)."""
        return self.backend.base_fingerprint

    @property
    def answer_fingerprint(self) -> str:
        """What identifies the answers: the base weights and their compute dtype (the cache and the evaluator's key)."""
        return self.backend.answer_fingerprint

    @property
    def model_directory(self) -> Path:
        """The in-process model's directory, which LoRA training loads a fresh copy from; AxError for a remote model."""
        return self.backend.model_directory

    @property
    def torch_model(self) -> Any:
        """The in-process torch model (adapters' layers included); AxError for a remote model."""
        return self.backend.torch_model

    def adapters(self) -> list[str]:
        return self.backend.adapters()

    def load_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None:
        """`allow_unverified`: load an adapter without an ax manifest (its base weights unchecked).
        The same weights served under several names are loaded once."""
        self.backend.load_adapter(name, path, allow_unverified=allow_unverified)

    def ensure_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None:
        """`load_adapter`, unless `name` already serves the adapter at `path`: call it as often as you like."""
        self.backend.ensure_adapter(name, path, allow_unverified=allow_unverified)

    def adapter_named_for(self, path: str | Path, *, allow_unverified: bool = False) -> str:
        """A name serving the adapter weights at `path`: one already serving them (a training run's), else
        `adapter-<fingerprint>` loaded now. Idempotent, so a configuration's adapter loads once per process."""
        fingerprint = adapter_fingerprint(path)
        for name in self.adapters():
            if self.backend.adapter_fingerprint(name) == fingerprint:
                return name
        name = f"adapter-{fingerprint[:12]}"
        self.ensure_adapter(name, path, allow_unverified=allow_unverified)
        return name

    def unload_adapter(self, name: str) -> None:
        self.backend.unload_adapter(name)

    def lm(self, adapter: str | None = None, **kwargs: Any) -> AxLM:
        return AxLM(self, adapter, **kwargs)

    def close(self) -> None:
        """Stop the backend (a local model's worker thread); calls still running fail, later ones are refused."""
        self.backend.close()


def _model_string(client: Client, adapter: str | None) -> str:
    return f"ax/{client.model_name}" + (f"@{adapter}" if adapter else "")


class AxLM(dspy.LM):
    """A dspy.LM whose calls go to an ax client, for one adapter (or the base model)."""

    def __init__(self, client: Client, adapter: str | None = None, *, temperature: float = 0.0,
                 max_tokens: int | None = None, **kwargs: Any):
        if adapter is not None:
            client.backend.adapter_fingerprint(adapter)  # fail now on an unknown adapter, not at first call
        # DSPy's own cache is off: the client's cache keys on weight fingerprints, DSPy's on names.
        super().__init__(model=_model_string(client, adapter), engine=AxEngine(client, adapter), cache=False,
                         temperature=temperature, max_tokens=max_tokens, num_retries=0, **kwargs)
        self.client = client
        self.adapter = adapter

    def with_adapter(self, adapter: str | None) -> AxLM:
        """The same LM, answering with `adapter` (None = the base model)."""
        if adapter is not None:
            self.client.backend.adapter_fingerprint(adapter)
        copied = self.copy(engine=AxEngine(self.client, adapter), model=_model_string(self.client, adapter))
        copied.adapter = adapter
        return copied

    def __deepcopy__(self, memo: dict) -> AxLM:
        """A view of the same client: DSPy deep-copies programs with the LMs set on their predictors
        (GEPA, for each candidate), and the model behind the client must not be copied with them."""
        return self.copy()

    @contextmanager
    def using_adapter(self, adapter: str | None) -> Iterator[AxLM]:
        lm = self.with_adapter(adapter)
        with dspy.context(lm=lm):
            yield lm

    def close(self) -> None:
        """Close the client, and with it every view of it (with_adapter copies); closing again is harmless."""
        super().close()
        self.client.close()

    def __enter__(self) -> AxLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def usage_summary(self) -> dict:
        return self.client.usage.totals().as_dict()

    def cache_stats(self) -> dict:
        return self.client.cache.stats()
