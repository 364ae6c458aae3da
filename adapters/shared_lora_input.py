"""LoRA layers that a block calls on one input compute their low-rank products of it in one matmul.

A decoder block hands q_proj, k_proj and v_proj the same tensor, and gate_proj and up_proj another.
Each LoRA layer reads that whole [tokens, hidden] input for its rank-r product x A^T, reads it
again in the backward pass for A's gradient, and writes an input gradient of its own that is then
summed with the others': memory-bound passes for products a few columns wide. With the group's A
matrices stacked, each of those is one pass for the group: the first member called on an input
computes every member's product, the others take their columns, and autograd's backward through
the stacking gives one gradient matmul for all A matrices and one input gradient.

Used with compiled layers (`torch_compile: true`), where inductor fuses the rest of LoRA's passes: on
ax's GPU training bench at batch 8 it raised the steady throughput from 91,641 to 94,480 real tokens/s
(README).

Only LoRA layers without dropout are grouped (PEFT draws a dropout mask per layer; a shared product
would share it). A member called on another input computes the products of that input; while any
member's adapter needs PEFT's own forward (disabled, merged, DoRA, several active), the whole group
takes it. Parameters stay PEFT's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ax.adapters.fused_lora import compute_dtype, plain_lora_adapter

# Sibling projections transformers' decoder blocks apply to one input (Llama, Mistral, Qwen, Gemma, ...)
GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Group:
    """The members' stacked low-rank products of the input they were last called on, for one call of their parent."""

    def __init__(self, members: list[Any]):
        self.members = members
        self.input: torch.Tensor | None = None
        self.products: torch.Tensor | None = None

    def products_of(self, x: torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
        if self.input is not x:
            stacked = torch.cat([m.lora_A[name].weight for m in self.members]).to(dtype)
            self.input, self.products = x, F.linear(x.to(dtype), stacked)
        return self.products

    def clear(self, *_: Any) -> None:
        self.input = self.products = None


def _member_forward(module: Any, group: _Group, peft_forward: Any) -> Any:
    index = group.members.index(module)

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        name = plain_lora_adapter(module)
        if args or kwargs or name is None or any(plain_lora_adapter(m) != name for m in group.members):
            return peft_forward(x, *args, **kwargs)
        dtype = compute_dtype(x)
        start = sum(m.r[name] for m in group.members[:index])
        low = group.products_of(x, name, dtype)[..., start:start + module.r[name]]
        out = module.get_base_layer()(x)
        return out + (F.linear(low, module.lora_B[name].weight.to(dtype)) * module.scaling[name]).to(out.dtype)

    return forward


def _groups(model: Any) -> list[tuple[Any, list[Any]]]:
    """(parent, members) for each set of sibling LoRA layers named in GROUPS, without dropout, of one input width."""
    from peft.tuners.lora.layer import Linear

    found = []
    for parent in model.modules():
        children = dict(parent.named_children())  # not getattr: PeftModel forwards unknown names to its base
        for names in GROUPS:
            members = [children.get(n) for n in names]
            if all(type(m) is Linear for m in members) and len({m.in_features for m in members}) == 1 and all(
                    isinstance(d, torch.nn.Identity) for m in members for d in m.lora_dropout.values()):
                found.append((parent, members))
    return found


@contextlib.contextmanager
def shared_lora_input(model: Any, active: bool = True) -> Iterator[int]:
    """Within the block (when `active`), grouped LoRA layers of `model` share their input's products; yields the
    number of groups. On leaving, each layer gets PEFT's forward back."""
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
