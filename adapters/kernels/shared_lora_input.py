"""LoRA layers that a block calls on one input compute their low-rank products of it in one matmul,
and each adds its update inside its base layer's matmul.

A decoder block hands q_proj, k_proj and v_proj the same tensor, and gate_proj and up_proj another.
Each LoRA layer reads that whole [tokens, hidden] input for its rank-r product x A^T, reads it
again in the backward pass for A's gradient, and writes an input gradient of its own that is then
summed with the others': memory-bound passes for products a few columns wide. With the group's A
matrices stacked, each of those is one pass for the group: the first member called on an input
computes every member's product, and autograd's backward through the stacking gives one gradient
matmul for all A matrices and one input gradient.

The products are joined to the input, P = [x | x A_1^T | x A_2^T ...], and each member computes
P [W | 0 ... s B 0 ...]^T: its base product and its scaled update in one GEMM, whose K grows by the
group's ranks. So no [tokens, out] update is written and added to the base output, and the backward
GEMM over P gives the input's gradient and every product's together, where separate B products
would each read the output gradient once more.

Used with compiled layers (`torch_compile: true`), where inductor fuses the rest of LoRA's passes: on
ax's GPU training bench at batch 8 the shared products raised the steady throughput from 91,641 to
94,480 real tokens/s, and the fold into the base GEMM to 99,683 (README).

Only LoRA layers without dropout over a frozen torch Linear are grouped (PEFT draws a dropout mask
per layer; a shared product would share it). A member called on another input computes the products
of that input; while any member's adapter needs PEFT's own forward (disabled, merged, DoRA, several
active), the whole group takes it. Parameters stay PEFT's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ax.adapters.kernels.fused_lora import compute_dtype, fusable, plain_lora_adapter

# Sibling projections transformers' decoder blocks apply to one input (Llama, Mistral, Qwen, Gemma, ...)
GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _FoldedLinear(torch.autograd.Function):
    """y = [x | P] [W | B']^T + b: the base product and the LoRA update in one GEMM, where P holds the group's
    low-rank products and B' is this member's scaled B placed at its columns of P (zeros at the others')."""

    @staticmethod
    def forward(ctx, joined, weight, bias, lora_b, start: int):
        ctx.save_for_backward(joined, weight, lora_b)
        ctx.start = start
        flat = joined.reshape(-1, joined.shape[-1])
        full = _full_weight(weight, lora_b, start, joined.shape[-1])
        out = flat @ full.t() if bias is None else torch.addmm(bias, flat, full.t())
        return out.view(*joined.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        # [W | B'] is rebuilt here, not saved: a saved copy of every base weight would live until the backward.
        joined, weight, lora_b = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1])
        flat = joined.reshape(-1, joined.shape[-1])
        grad_joined = grad_b = None
        if ctx.needs_input_grad[0]:  # x's gradient and every member's product gradient, in the one GEMM
            grad_joined = (grad @ _full_weight(weight, lora_b, ctx.start, joined.shape[-1])).view(joined.shape)
        if ctx.needs_input_grad[3]:
            columns = weight.shape[1] + ctx.start
            grad_b = grad.t() @ flat[:, columns:columns + lora_b.shape[1]]
        return grad_joined, None, None, grad_b, None  # the base is frozen (fusable)


def _full_weight(weight: torch.Tensor, lora_b: torch.Tensor, start: int, width: int) -> torch.Tensor:
    after = width - weight.shape[1] - start - lora_b.shape[1]
    return torch.cat([weight, F.pad(lora_b, (start, after))], dim=1)


class _Group:
    """The input its members were last called on, joined with all their low-rank products, for one call
    of their parent."""

    def __init__(self, members: list[Any]):
        self.members = members
        self.input: torch.Tensor | None = None
        self.joined: torch.Tensor | None = None

    def joined_with_products(self, x: torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
        if self.input is not x:
            stacked = torch.cat([m.lora_A[name].weight for m in self.members]).to(dtype)
            cast = x.to(dtype)
            self.input, self.joined = x, torch.cat([cast, F.linear(cast, stacked)], dim=-1)
        return self.joined

    def clear(self, *_: Any) -> None:
        self.input = self.joined = None


def _member_forward(module: Any, group: _Group, peft_forward: Any) -> Any:
    index = group.members.index(module)

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        name = plain_lora_adapter(module)
        if args or kwargs or name is None or any(plain_lora_adapter(m) != name for m in group.members):
            return peft_forward(x, *args, **kwargs)
        dtype = compute_dtype(x)
        base = module.get_base_layer()
        start = sum(m.r[name] for m in group.members[:index])
        bias = None if base.bias is None else base.bias.to(dtype)
        lora_b = module.lora_B[name].weight.to(dtype) * module.scaling[name]
        with torch.autocast(x.device.type, enabled=False):
            return _FoldedLinear.apply(group.joined_with_products(x, name, dtype), base.weight.to(dtype), bias,
                                       lora_b, start)

    return forward


def _groups(model: Any) -> list[tuple[Any, list[Any]]]:
    """(parent, members) for each set of sibling LoRA layers named in GROUPS, without dropout, of one input width."""
    found = []
    for parent in model.modules():
        children = dict(parent.named_children())  # not getattr: PeftModel forwards unknown names to its base
        for names in GROUPS:
            members = [children.get(n) for n in names]
            if all(fusable(m) for m in members) and len({m.in_features for m in members}) == 1 and all(
                    isinstance(d, torch.nn.Identity) for m in members for d in m.lora_dropout.values()):
                found.append((parent, members))
    return found


@contextlib.contextmanager
def shared_lora_input(model: Any, active: bool = True) -> Iterator[int]:
    """Within the block (when `active`), grouped LoRA layers of `model` share their input's products and add
    their updates inside their base GEMMs; yields the number of groups. On leaving, each layer gets PEFT's
    forward back."""
    groups = _groups(model) if active else []
    hooks = []
    for parent, members in groups:
        group = _Group(members)
        for member in members:
            member.forward = _member_forward(member, group, member.forward)
        # Nothing is kept past the parent's call (a graph compiled over the block then outputs nothing extra).
        hooks.append(parent.register_forward_hook(group.clear))
    try:
        yield len(groups)
    finally:
        for hook in hooks:
            hook.remove()
        for _, members in groups:
            for member in members:
                del member.forward
