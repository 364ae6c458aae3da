"""Each decoder layer compiled on its own while an adapter trains (`torch_compile: true`).

Compiling the whole model, as the Trainer's own `torch_compile` does, traces transformers' mask
making into the graph; there it cannot hand SDPA `is_causal` and builds the full mask, and with
batches of changing shapes the graph recompiles. Each decoder layer compiled alone (inductor fuses LoRA's
low-rank additions, norms, rotary embeddings and activations around the matmuls) reaches a higher MFU than
the whole model compiled, same GPU and process (`python bench/lora_step_ceiling.py bench
"m,32,1024,layers,0;m,32,1024,default,0"`; figures in the README's Measured section). With `fixed_packing`
every step has one shape: in the first steps the layers compile four times (the first layer apart, its
input needing no gradient; each again once the count of packed examples changes, which then stays
symbolic) and never after (`TORCH_LOGS=recompiles`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ax.errors import AxError


def decoder_layers(model: Any) -> list[Any]:
    """The model's repeated blocks: the classes transformers names in `_no_split_modules`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in base.modules() if type(m).__name__ in names]
    if not layers:
        raise AxError(f"torch_compile: {type(base).__name__} names no decoder layer class "
                      f"(_no_split_modules = {sorted(names)}); set torch_compile: false")
    return layers


@contextlib.contextmanager
def compiled_layers(model: Any, active: bool = True, backend: str = "inductor") -> Iterator[int]:
    """Within the block (when `active`), each decoder layer of `model` runs compiled; yields how many.

    On leaving, the layers run eagerly again (inference and saving see the plain model).
    """
    layers = decoder_layers(model) if active else []
    for layer in layers:
        layer.compile(backend=backend)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer._compiled_call_impl = None  # what nn.Module.compile set; None is the eager call
