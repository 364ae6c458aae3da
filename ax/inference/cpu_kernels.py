"""fp32 linear layers on oneDNN's pre-packed weights, for generation on a CPU.

MKL's sgemm (PyTorch's default) runs the skinny products of decoding poorly; a decode step runs
faster on weights reordered once into oneDNN's blocked layout, most at batch 8 (`python
bench/decode_cost.py --repeats 15`, "rooms" against "rooms+packed"; figures in the README's
Measured section). PyTorch's inductor does the same reorder when it freezes a model for CPU
inference; here it is done without compiling anything.

The packed copy only serves inference: with gradients enabled, on another device or dtype, a
layer computes with its own weight as nn.Linear does. A weight changed in place (another
pointer, or a bumped version counter) is packed again before its next use.

oneDNN keeps a primitive, and its JIT-compiled code, for every row count it has multiplied; mixed
batches bring hundreds of row counts, so resident memory kept growing (`bench/soak.py`, README).
So only decode-sized products (up to 64 rows, padded to one of 22 sizes) run on the packed weight;
longer ones (prefill) run on PyTorch's own kernel, which keeps nothing per shape.
"""

from __future__ import annotations

import torch
from torch import nn

# oneDNN picks its blocking for a typical batch; any batch size still runs on the packed weight.
_BATCH_HINT = 8
PACKED_MAX_ROWS = 64


def padded_rows(rows: int) -> int:
    """The row count a packed product of `rows` rows runs with: 1-16 as they are, then multiples of 8."""
    return rows if rows <= 16 else -(-rows // 8) * 8


def cpu_packing_available() -> bool:
    try:
        torch.ops.mkldnn._reorder_linear_weight
        torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return False
    return torch.backends.mkldnn.is_available()


class PackedLinear(nn.Linear):
    """An nn.Linear (PEFT wraps it like any other) that runs inference on a oneDNN-packed weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() < 2
                or x.numel() > PACKED_MAX_ROWS * x.shape[-1]):
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])
        padded = padded_rows(rows.shape[0])
        if padded != rows.shape[0]:
            rows = torch.nn.functional.pad(rows, (0, 0, 0, padded - rows.shape[0]))
        out = torch.ops.mkldnn._linear_pointwise(rows, self._packed_weight(), self.bias, "none", [], "")
        return out[:x.numel() // x.shape[-1]].reshape(*x.shape[:-1], out.shape[-1])

    def _packed_weight(self) -> torch.Tensor:
        weight = self.weight
        key = (weight.data_ptr(), weight._version)
        if getattr(self, "_ax_packed_key", None) != key:
            self._ax_packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _BATCH_HINT)
            self._ax_packed_key = key
        return self._ax_packed


def pack_linear_layers(model: nn.Module) -> int:
    """Turn the model's fp32 CPU nn.Linear layers into PackedLinear in place; returns how many."""
    if not cpu_packing_available():
        return 0
    packed = 0
    for module in model.modules():
        if (type(module) is nn.Linear and module.weight.device.type == "cpu"
                and module.weight.dtype == torch.float32):
            module.__class__ = PackedLinear
            packed += 1
    return packed
