"""A batch's examples that begin with the same tokens train with that prefix computed once.

Every training pair of one program starts with the same system prompt (DSPy's field layout, the
instruction, a GEPA instruction's worked examples), often a third or more of its tokens (README,
Measured). In a padded batch each row computes those tokens again, forward and backward, with the
same weights. Here a batch is one row laid out as the shared prefix followed by
each example's remaining tokens (its suffix), with position ids that continue the prefix in each
suffix; attention runs each suffix causally over the prefix and its own tokens. The
maths of a row is the padded batch's: the prefix's states are those every row would compute, and
their gradient is the sum the rows' copies would receive. Two things differ: one LoRA dropout mask
covers the prefix where each row drew its own, and float sums are taken in another order.

The prefix stops before each example's first label and leaves every suffix at least one unlabelled
token, so that no completion token is predicted across a suffix boundary and the loss is the
padded batch's. A batch whose examples share fewer than `MIN_SHARED` tokens is padded as before and
attends causally.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from ax.adapters.dataset import IGNORE_INDEX

IMPLEMENTATION = "ax_shared_prefix"
LAYOUT_KEY = "shared_prefix_layout"  # (prefix length, suffix lengths): the batch's kwarg, read by attention
MIN_SHARED = 16


def shared_length(examples: Sequence[dict[str, list[int]]]) -> int:
    """Tokens the examples can share: their common prefix, cut so that every example keeps its first
    label and the unlabelled token before it out of it (0 for fewer than two examples)."""
    if len(examples) < 2:
        return 0
    first = examples[0]["input_ids"]
    common = min(len(e["input_ids"]) for e in examples)
    for example in examples[1:]:
        common = next((i for i, (a, b) in enumerate(zip(first[:common], example["input_ids"])) if a != b), common)
    labelled = min(next((i for i, label in enumerate(e["labels"]) if label != IGNORE_INDEX), len(e["labels"]))
                   for e in examples)
    return max(0, min(common, labelled - 1))


def shared_batch(features: Sequence[dict[str, list[int]]], prefix: int) -> dict[str, Any]:
    """One row [1, prefix + suffixes]: the shared prefix once, then each example's tokens after it,
    positions continuing the prefix in each; the layout rides along under `LAYOUT_KEY`."""
    ids, labels, positions, suffixes = list(features[0]["input_ids"][:prefix]), [IGNORE_INDEX] * prefix, list(range(prefix)), []
    for feature in features:
        suffix = len(feature["input_ids"]) - prefix
        ids += feature["input_ids"][prefix:]
        labels += feature["labels"][prefix:]
        positions += range(prefix, prefix + suffix)
        suffixes.append(suffix)
    as_row = lambda values: torch.tensor(values, dtype=torch.long)[None]  # noqa: E731
    return {"input_ids": as_row(ids), "labels": as_row(labels), "position_ids": as_row(positions),
            LAYOUT_KEY: (prefix, tuple(suffixes))}


def supported(model: Any) -> bool:
    """Plain causal attention: no sliding window, soft-capping or attention dropout to carry over."""
    config = model.config
    return not (getattr(config, "sliding_window", None) or getattr(config, "attn_logit_softcapping", None)
                or getattr(config, "attention_dropout", 0.0))


def _causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> torch.Tensor:
    if k.shape[1] != q.shape[1]:
        k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
               scaling: float | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query [rows, heads, width, dim], key and value [rows, kv heads, width, dim] -> [rows, width, heads, dim].

    Each suffix attends causally over the prefix and itself, as its padded row would (the causal
    kernel skips what a mask would compute and discard); the prefix's queries ride along in the
    first suffix's call, which gives their outputs, and in the others' calls, which drop them.
    Without a layout the batch is a right-padded one, which causal attention alone serves."""
    layout = kwargs.get(LAYOUT_KEY)
    if layout is None:
        return _causal(query, key, value, scaling).transpose(1, 2), None
    prefix, suffixes = layout
    parts, start = [], prefix
    for j, suffix in enumerate(suffixes):
        end = start + suffix
        q, k, v = (torch.cat([t[:, :, :prefix], t[:, :, start:end]], dim=2) for t in (query, key, value))
        attended = _causal(q, k, v, scaling)
        parts.append(attended if j == 0 else attended[:, :, prefix:])
        start = end
    return torch.cat(parts, dim=2).transpose(1, 2), None


AttentionInterface.register(IMPLEMENTATION, _attention)


@contextlib.contextmanager
def shared_prefix_attention(model: Any, active: bool = True) -> Iterator[None]:
    """Within the block (when `active`), `model` (a transformers model) attends through `_attention`:
    batches from `SharedPrefixCollator` by their layout, padded ones causally."""
    config = model.config
    own = config._attn_implementation
    if active:
        config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = own
