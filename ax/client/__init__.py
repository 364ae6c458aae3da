"""The LM client: DSPy programs talk to a local (LoRA-adapted) model or a remote server through it.

The client is DSPy's side (the `dspy.LM`, its engine, decoding a signature's fields, the response
cache and usage) and the `Backend` protocol it generates through; `RemoteBackend` implements that
protocol over an OpenAI-compatible server. The in-process engine (`ax.inference.local.LocalBackend`)
is a layer below, in `ax.inference`: `LM` constructs it, and it never imports the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ax.client.client import AxLM, Client
from ax.client.generation import Backend, Generation, GenerationParams, GenerationRequest
from ax.client.remote import RemoteBackend
from ax.model import load_model, load_tokenizer, resolve


def LM(model: str | None = None, *, adapters: dict[str, str | Path | None] | None = None, device: str | None = None,
       dtype: str | None = None, remote: str | None = None, served_model: str | None = None,
       api_key: str = "EMPTY", cache: bool = True, cache_path: str | Path | None = None,
       max_batch_size: int = 16, max_field_tokens: int = 160, prefix_cache: bool = True, pack_weights: bool = True,
       draft_tokens: int | None = None, allow_unverified_adapters: bool = False, **lm_kwargs: Any) -> AxLM:
    """A DSPy LM on `model`: 'smollm2' (the embedded default), an HF directory, a .gguf file or a hub id.

    `adapters` maps names to PEFT adapter directories, loaded onto the base model at once; one
    without an ax manifest (not trained by ax) is refused unless `allow_unverified_adapters`.
    With `remote` (an OpenAI-compatible base URL such as a vLLM server's http://host:8000/v1),
    generation happens there: `model` only supplies the chat template, `served_model` is the
    base model's name on the server (default: the model's name), and each adapter path (as the
    server sees it) is loaded into the running server; a name mapped to None must already be
    served there (vLLM: --lora-modules name=path). `prefix_cache=False` prefills every
    local prompt whole instead of reusing the states of prefixes it shares with other prompts;
    `pack_weights=False` keeps a CPU model's linear layers on PyTorch's own fp32 kernels instead of
    oneDNN-packed copies of their weights (which take as much memory again as those weights);
    `draft_tokens` caps the prompt-lookup tokens a greedy row checks per step (0: none; default 6),
    which change no greedy token.
    """
    if remote:
        backend = RemoteBackend(remote, model=served_model or resolve(model).name, tokenizer=load_tokenizer(model),
                                api_key=api_key)
        name = backend.model
    else:
        from ax.inference.local import LocalBackend  # torch: a remote LM never loads it

        loaded = load_model(model, device=device, dtype=dtype)
        backend = LocalBackend(loaded, max_batch_size=max_batch_size, prefix_cache=prefix_cache,
                               pack_weights=pack_weights, draft_tokens=draft_tokens)
        name = loaded.name
    client = Client(backend, model_name=name, cache=cache, cache_path=cache_path, max_field_tokens=max_field_tokens)
    for adapter, path in (adapters or {}).items():
        client.load_adapter(adapter, path, allow_unverified=allow_unverified_adapters)
    return client.lm(**lm_kwargs)


__all__ = ["LM", "AxLM", "Backend", "Client", "Generation", "GenerationParams", "GenerationRequest", "RemoteBackend"]
