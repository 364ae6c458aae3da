"""A LoRA linear layer's training step in fewer passes over its activations.

PEFT computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as separate ops: the low-rank
product is written out, scaled into a second copy, and added to the base output in a third; in
the backward pass autograd scales the gradient again and adds the two branches' input gradients.
Each of those is a full pass over a [tokens, features] tensor for a rank-16 product that is
itself nearly free, and with seven adapted projections per block they are a large part of a LoRA
step on a GPU. Here the low-rank product is accumulated into the base output (and its input
gradient into the base's) by cuBLAS's `addmm_`, with the scale as its `alpha`.

The parameters stay PEFT's own (the same `lora_A` / `lora_B` weights the optimizer updates and
`save_pretrained` writes); only how a plain LoRA `Linear` computes its forward and backward while
training changes, and everything else (DoRA, 4-bit bases, mixed-adapter batches, merged or
disabled adapters) keeps PEFT's forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + scaling * (x_lora A^T) B^T, with x_lora = dropout(x) given separately when dropout is on."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, dropped):
        flat = x.reshape(-1, x.shape[-1])
        lora_in = flat if dropped is None else dropped.reshape(flat.shape)
        low = lora_in @ lora_a.t()
        out = flat @ weight.t() if bias is None else torch.addmm(bias, flat, weight.t())
        out.addmm_(low, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(weight, lora_a, lora_b, lora_in, low)
        ctx.scaling, ctx.separate_dropout, ctx.input_shape = scaling, dropped is not None, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        weight, lora_a, lora_b, lora_in, low = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_low = (grad @ lora_b).mul_(ctx.scaling)
        grad_a = grad_low.t() @ lora_in if ctx.needs_input_grad[3] else None
        grad_b = (grad.t() @ low).mul_(ctx.scaling) if ctx.needs_input_grad[4] else None
        grad_x = grad_dropped = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ weight
            if ctx.separate_dropout:
                grad_dropped = (grad_low @ lora_a).view(ctx.input_shape)
            else:
                grad_x.addmm_(grad_low, lora_a)
            grad_x = grad_x.view(ctx.input_shape)
        return grad_x, None, None, grad_a, grad_b, None, grad_dropped


def dropped_input(dropout: torch.nn.Dropout, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`dropout(x)` in `dtype`. On a CPU the mask comes from 16-bit draws, three from each 64-bit random
    word: torch's CPU dropout draws one number an element on one thread, a large share of a bf16 LoRA
    step (README, Measured: "Dropout masks on a CPU"). Each element is still dropped alone with
    probability p (to within 1/65536) and the rest scaled by 1 / (1 - p)."""
    if x.device.type != "cpu" or not dropout.training or dropout.p == 0:
        return torch.nn.functional.dropout(x, dropout.p, dropout.training).to(dtype)
    words = torch.empty((x.numel() + 2) // 3, 4, dtype=torch.int16)
    words.view(torch.int64).random_()  # 63 random bits a word: the fourth int16's sign bit is always 0
    dropped = (words[:, :3] < round(dropout.p * 65536) - 32768).reshape(-1)[: x.numel()].view(x.shape)
    return x.to(dtype, copy=True).masked_fill_(dropped, 0).mul_(1 / (1 - dropout.p))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run this layer's matmuls in (the input's own without autocast)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def fusable(module: Any) -> bool:
    """A plain LoRA Linear over a frozen torch Linear (no 4-bit base, no Conv1D layout, no trained base bias)."""
    from peft.tuners.lora.layer import Linear

    if type(module) is not Linear:
        return False
    base = module.get_base_layer()
    return (type(base) is torch.nn.Linear and not module.fan_in_fan_out and not base.weight.requires_grad
            and (base.bias is None or not base.bias.requires_grad))


def plain_lora_adapter(module: Any) -> str | None:
    """The adapter a LoRA layer adds now as a plain low-rank product; None where PEFT's forward is needed
    (adapters disabled or merged, several active, DoRA or another variant)."""
    active = module.active_adapters
    if (module.disable_adapters or module.merged or len(active) != 1 or active[0] not in module.lora_A
            or active[0] in module.lora_variant):
        return None
    return active[0]


def _fused_forward(module: Any, peft_forward: Any) -> Any:
    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        name = plain_lora_adapter(module)
        if args or kwargs or name is None:
            return peft_forward(x, *args, **kwargs)
        dtype = compute_dtype(x)
        base = module.get_base_layer()
        dropout = module.lora_dropout[name]
        dropped = None if isinstance(dropout, torch.nn.Identity) else dropped_input(dropout, x, dtype)
        bias = None if base.bias is None else base.bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _LoraLinear.apply(x.to(dtype), base.weight.to(dtype), bias, module.lora_A[name].weight.to(dtype),
                                     module.lora_B[name].weight.to(dtype), module.scaling[name], dropped)

    return forward


@contextlib.contextmanager
def fused_lora(model: Any, active: bool = True) -> Iterator[int]:
    """Within the block, plain LoRA Linear layers of `model` train through `_LoraLinear`; yields how many.

    On leaving, each layer gets PEFT's forward back, so the trained model is an ordinary PeftModel.
    """
    modules = [m for m in model.modules() if fusable(m)] if active else []
    for module in modules:
        module.forward = _fused_forward(module, module.forward)
    try:
        yield len(modules)
    finally:
        for module in modules:
            del module.forward
