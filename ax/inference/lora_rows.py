"""Each adapter's LoRA on its own run of a mixed-adapter forward's rows, through slices, not indices.

PEFT's mixed-adapter batches (`model(..., adapter_names=[...])`) rebuild each adapter's row list
from the per-row names in every LoRA layer, gather those rows and add the low-rank product back
through the index, a large share of answering long prompts on a CPU (README, Measured: "Mixed-adapter
steps"). The engine lays a step's rows grouped by adapter
(ax/inference/rows.py), so each adapter's rows are one run of the forward's first dimension: its
product is computed on a view of the layer's input and added into a view of the base output.
The arithmetic is PEFT's own: the rows cast to the adapter's dtype, `lora_B(lora_A(dropout(x))) *
scaling`, cast back and added. Forwards this cannot serve (another kind of LoRA layer, such as an
embedding's or a 4-bit one, a modules_to_save copy, or an adapter with a variant such as DoRA) keep
PEFT's `adapter_names`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Callable, Iterator, Sequence

import torch

Run = tuple[str, int, int]  # PEFT's adapter name, the first row, the row after the last


def runs_of(names: Sequence[str]) -> list[Run]:
    """Consecutive rows of one adapter as runs."""
    runs, start = [], 0
    for name, group in itertools.groupby(names):
        count = len(list(group))
        runs.append((name, start, start + count))
        start += count
    return runs


class LoraRows:
    """The LoRA layers of one PeftModel as they stand (made again whenever adapters come or go)."""

    def __init__(self, model: Any):
        from peft.tuners.lora.layer import Linear, LoraLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
        # Modules PEFT also routes by `adapter_names` (modules_to_save copies, trainable tokens) stay PEFT's.
        routed = any(isinstance(module, AuxiliaryTrainingWrapper) for module in model.modules())
        self._layers = layers if not routed and all(type(module) is Linear for module in layers) else None
        self._variants = {name for module in layers for name in module.lora_variant}

    def serves(self, names: Sequence[str]) -> bool:
        """Whether a forward over rows of these PEFT adapter names can run through `runs`."""
        return self._layers is not None and not self._variants.intersection(names)

    @contextlib.contextmanager
    def runs(self, names: Sequence[str]) -> Iterator[None]:
        """Within the block, the model's LoRA layers add each adapter's product to its own rows
        (`names`: the adapter of each entry of the forward's first dimension, adapters in runs)."""
        layers = self._layers or []
        runs = runs_of(names)
        for module in layers:
            module.forward = _forward(module, runs)
        try:
            yield
        finally:
            for module in layers:
                del module.forward


def _forward(module: Any, runs: list[Run]) -> Callable[..., torch.Tensor]:
    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = module.base_layer(x, *args, **kwargs)
        for name, start, stop in runs:
            if name not in module.lora_A:  # the base model's rows, or an adapter without this layer
                continue
            lora_A = module.lora_A[name]
            rows = module.lora_dropout[name](x[start:stop].to(lora_A.weight.dtype))
            result[start:stop] += (module.lora_B[name](lora_A(rows)) * module.scaling[name]).to(result.dtype)
        return result

    return forward
