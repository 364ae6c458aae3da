"""One forward for rows fed different numbers of tokens: a joining row's prompt beside decoding rows' next tokens.

A decode step is bound by reading the weights, whatever it feeds, and a joining row's prompt is
compute. So a joiner's prompt rides in the decoding rows' step instead of a forward of its own,
during which they would wait, and no row is padded to another's count (vLLM's and SGLang's
chunked prefill mix the two kinds the same way). A joiner fed in the decoding rows' step takes less
time than its prefill alone followed by their step (`python bench/decode_cost.py --repeats 15`;
figures in the README's Measured section).

The model runs its own forward on the fed tokens laid one to a batch row ([tokens, 1]): the
linear layers, norms and rotary embeddings take each token alone, and PEFT's mixed-adapter
batches get a name per token. Attention, the one place where tokens meet, is registered with
transformers' AttentionInterface for the forward's length: it writes each token's key and value
into its row's slot of the `Rooms` (ax/inference/kv_cache.py), where column c of a row holds its
position c, and attends each row to its own columns, through the model's own attention function
(SDPA, or the modeling file's eager one where the model uses eager attention, with soft-capping
and all) on groups of rows with similar counts. A layer with a sliding window sees the positions
within its window. Only the logits asked for are computed: a joiner's prompt tokens need none.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from ax.inference.kv_cache import Rooms

IMPLEMENTATION = "ax_rows"
# Rows fed up to this many tokens have their query heads stacked (`_grouped_sdpa`); a longer prompt's
# mask, laid once for each query head of a key head, would take more memory than repeated keys.
_STACKED_WIDTH = 64
SLIDING = "sliding_attention"
_active = threading.local()  # each backend's worker thread runs its own forwards


def sliding_window(config: Any) -> int | None:
    """The window of the model's sliding-window layers, or None when it has none."""
    size = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not size or (layer_types is not None and SLIDING not in layer_types):
        return None
    return int(size)


def _layer_window(config: Any, layer: int) -> int | None:
    size = sliding_window(config)
    layer_types = getattr(config, "layer_types", None)
    return size if size is not None and (layer_types is None or layer_types[layer] == SLIDING) else None


@dataclass
class _Group:
    """Rows attended in one call: a run of slots (rows in between that feed nothing get a dummy
    query) or, where that would be mostly dummies, the rows' slots gathered."""

    slots: slice | torch.Tensor
    queries: torch.Tensor  # [rows * width]: the fed token each query slot takes (dummies take token 0)
    outputs: torch.Tensor  # positions in [rows * width] of real queries
    tokens: torch.Tensor  # which fed token each real query is
    lengths: torch.Tensor  # [rows]: each row's states before this step
    counts: torch.Tensor  # [rows]: tokens each row is fed (1 for a dummy)
    width: int
    columns: int
    masks: dict[tuple[int | None, bool, int], torch.Tensor] = field(default_factory=dict)

    def mask(self, window: int | None, additive: bool, dtype: torch.dtype, repeat: int = 1) -> torch.Tensor:
        """[rows, 1, repeat * width, columns]: query j of a row sits at column length + j and sees the
        columns up to it (within `window` positions); a pad query repeats the row's last. `repeat`
        lays the mask once for each query head that shares a key head (see `_attention`)."""
        key = (window, additive, repeat)
        if key not in self.masks:
            device = self.lengths.device
            offsets = torch.minimum(torch.arange(self.width, device=device)[None, :], (self.counts - 1)[:, None])
            at = (self.lengths[:, None] + offsets)[:, :, None]
            columns = torch.arange(self.columns, device=device)[None, None, :]
            seen = columns <= at
            if window is not None:
                seen &= columns > at - window
            seen = seen[:, None].repeat(1, repeat, 1, 1).view(len(self.lengths), 1, repeat * self.width, self.columns)
            self.masks[key] = (torch.zeros(seen.shape, dtype=dtype, device=device).masked_fill_(
                ~seen, torch.finfo(dtype).min) if additive else seen)
        return self.masks[key]


@dataclass
class _Forward:
    config: Any
    rooms: Rooms
    implementation: str  # the model's own, whose function each group runs through
    slots: torch.Tensor  # [tokens]: each fed token's slot
    columns: torch.Tensor  # [tokens]: its column there, its position
    groups: list[_Group]


def _groups(slots: Sequence[int], lengths: Sequence[int], counts: Sequence[int], device: torch.device) -> list[_Group]:
    """Rows bucketed by count (a group's widest at most twice its narrowest, or 8 more), so that a
    long prompt's queries are not repeated for rows that feed one token. A row fed more than
    `_STACKED_WIDTH` tokens is a group of its own: padded to a neighbour's queries and columns, a
    prompt's attention took longer than exact calls for each (bench/row_attention.py)."""
    starts = [0]
    for count in counts[:-1]:
        starts.append(starts[-1] + count)
    order = sorted(range(len(slots)), key=lambda i: counts[i])
    buckets: list[list[int]] = []
    for i in order:
        if (buckets and counts[i] <= _STACKED_WIDTH
                and counts[i] <= max(2 * counts[buckets[-1][0]], counts[buckets[-1][0]] + 8)):
            buckets[-1].append(i)
        else:
            buckets.append([i])
    groups = []
    for bucket in buckets:
        bucket.sort(key=lambda i: slots[i])
        first, last = slots[bucket[0]], slots[bucket[-1]]
        contiguous = last - first + 1 <= 2 * len(bucket)
        members: list[int | None] = [None] * (last - first + 1) if contiguous else list(bucket)
        if contiguous:
            for i in bucket:
                members[slots[i] - first] = i
        width = max(counts[i] for i in bucket)
        queries, outputs, tokens = [], [], []
        for position, i in enumerate(members):
            for j in range(width):
                if i is None:
                    queries.append(0)
                    continue
                queries.append(starts[i] + min(j, counts[i] - 1))
                if j < counts[i]:
                    outputs.append(position * width + j)
                    tokens.append(starts[i] + j)
        row_lengths = [lengths[i] if i is not None else 0 for i in members]
        row_counts = [counts[i] if i is not None else 1 for i in members]
        tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
        groups.append(_Group(
            slots=slice(first, last + 1) if contiguous else tensor([slots[i] for i in bucket]),
            queries=tensor(queries), outputs=tensor(outputs), tokens=tensor(tokens),
            lengths=tensor(row_lengths), counts=tensor(row_counts), width=width,
            columns=max(length + count for length, count in zip(row_lengths, row_counts))))
    return groups


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query [tokens, heads, 1, dim], key and value [tokens, kv heads, 1, dim] -> [tokens, 1, heads, dim]."""
    forward: _Forward = _active.forward
    keys, values = forward.rooms.layer(module.layer_idx, key)
    keys[forward.slots, :, forward.columns] = key[:, :, 0]
    values[forward.slots, :, forward.columns] = value[:, :, 0]
    window = _layer_window(forward.config, module.layer_idx)
    heads, dim = query.shape[1], query.shape[-1]
    out = query.new_empty((query.shape[0], heads, dim))
    for group in forward.groups:
        rows = group.queries.shape[0] // group.width
        q = query[group.queries, :, 0].view(rows, group.width, heads, dim).transpose(1, 2)
        k, v = keys[group.slots, :, : group.columns], values[group.slots, :, : group.columns]
        if forward.implementation == "eager":  # the modeling file's own: soft-capping and the rest stay
            eager = sys.modules[type(module).__module__].eager_attention_forward
            attended, _ = eager(module, q, k, v, group.mask(window, True, query.dtype), **kwargs)
        elif kwargs.get("softcap") is None and group.width <= _STACKED_WIDTH:
            attended = _grouped_sdpa(q, k, v, group.mask(window, False, query.dtype, heads // k.shape[1]),
                                     kwargs.get("scaling"))
        else:  # transformers' own SDPA, soft-capping as this version does it (5.24 refuses it, 5.17 leaves it out)
            attended, _ = sdpa_attention_forward(module, q, k, v, group.mask(window, False, query.dtype), **kwargs)
        out.index_copy_(0, group.tokens, attended.reshape(rows * group.width, heads, dim)[group.outputs])
    return out[:, None], None


def _grouped_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                  scale: float | None) -> torch.Tensor:
    """SDPA with the query heads that share a key head stacked as more queries of it (q [rows, heads,
    width, dim], k and v [rows, kv heads, columns, dim]) -> [rows, width, heads, dim]. Repeating the
    keys for each head instead, transformers' way under a mask, copies them every layer."""
    rows, heads, width, dim = q.shape
    stacked = q.reshape(rows, k.shape[1], heads // k.shape[1] * width, dim)
    attended = torch.nn.functional.scaled_dot_product_attention(stacked, k, v, attn_mask=mask, scale=scale)
    return attended.reshape(rows, heads, width, dim).transpose(1, 2)


AttentionInterface.register(IMPLEMENTATION, _attention)


@contextlib.contextmanager
def _rows_attention(model: Any, forward: _Forward) -> Iterator[None]:
    """The model's config names this attention while the forward runs (its masks and every other
    forward keep theirs), so one backend's worker is the model's only user, as it is for adapters."""
    config = model.config
    _active.forward = forward
    config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = forward.implementation
        _active.forward = None


def forward_rows(model: Any, rooms: Rooms, slots: Sequence[int], lengths: Sequence[int],
                 fed: Sequence[Sequence[int]], wanted: Sequence[int], **kwargs: Any) -> torch.Tensor:
    """Feed each row (`slots[i]`, with `lengths[i]` states in `rooms`) its tokens `fed[i]`, writing their
    states after its own; the float logits [len(wanted), vocab] after the fed tokens numbered
    `wanted` (counted through all rows' tokens in order). `kwargs` go to the model's forward."""
    device = model.device
    counts = [len(tokens) for tokens in fed]
    columns = [length + j for length, count in zip(lengths, counts) for j in range(count)]
    rooms.reserve(max(slots) + 1, max(length + count for length, count in zip(lengths, counts)))
    forward = _Forward(model.config, rooms, model.config._attn_implementation,
                       torch.tensor([slot for slot, count in zip(slots, counts) for _ in range(count)], device=device),
                       torch.tensor(columns, device=device), _groups(slots, lengths, counts, device))
    wanted_index = torch.tensor(wanted, device=device)
    head = model.get_output_embeddings()
    # A LoRA layer on the head takes PEFT's per-token adapter names, so it sees every token.
    plain_head = not hasattr(head, "lora_A")
    hook = head.register_forward_pre_hook(lambda _, args: (args[0][wanted_index], *args[1:])) if plain_head else None
    try:
        with _rows_attention(model, forward):
            logits = model(input_ids=torch.tensor([t for tokens in fed for t in tokens], device=device)[:, None],
                           position_ids=forward.columns[:, None], use_cache=False, **kwargs).logits[:, 0]
    finally:
        if hook is not None:
            hook.remove()
    return (logits if plain_head else logits[wanted_index]).float()
