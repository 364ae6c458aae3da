"""A KV cache that writes each step's keys and values into room reserved ahead.

transformers' DynamicLayer concatenates every step, copying the whole cache: a batch-8 decode
step of SmolLM2 took 179 ms that way and 142 ms written into reserved room on 2 CPU cores
(`python bench/decode_cost.py --repeats 15`). Here each layer's keys and values live in room
made once for the prompt and every token its rows may still generate, and a step writes one
column into it. Sliding-window layers keep every column too, as full ones do: rows laid side by
side need one width, and the window is applied by the masks (attention_masks.py).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ax.client.attention_masks import attention_mask


class ReservedLayer(DynamicLayer):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._room: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        used = self.get_seq_length()
        end = used + key_states.shape[-2]
        if not self._fits(key_states, used, end):
            size = max(self.capacity, 2 * end)  # past its capacity, it doubles
            room = tuple(new.new_empty((*new.shape[:-2], size, new.shape[-1])) for new in (key_states, value_states))
            if used:
                room[0][..., :used, :].copy_(self.keys)
                room[1][..., :used, :].copy_(self.values)
            self._room = room
        keys, values = self._room
        keys[..., used:end, :].copy_(key_states)
        values[..., used:end, :].copy_(value_states)
        self.keys, self.values = keys[..., :end, :], values[..., :end, :]
        return self.keys, self.values

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, used: int) -> None:
        self.lazy_initialization(keys, values)
        self._room = (keys, values)
        self.keys, self.values = keys[..., :used, :], values[..., :used, :]

    def _fits(self, new: torch.Tensor, used: int, end: int) -> bool:
        """Whether the new states go into the current room: the same rows, space left, and the
        layer's states still a view of it (batch reordering or selection replaces them)."""
        if self._room is None:
            return False
        room = self._room[0]
        return (room.shape[:-2] == new.shape[:-2] and end <= room.shape[-2]
                and (not used or self.keys.data_ptr() == room.data_ptr()))


def full_cache(config: Any, states: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> DynamicCache:
    """transformers' cache for this model, holding `states`, with sliding-window layers that keep every column."""
    cache = DynamicCache(config=config)
    cache.layers = [DynamicLayer() if isinstance(layer, DynamicLayer) else layer for layer in cache.layers]
    for layer, (keys, values) in zip(cache.layers, states or []):
        layer.update(keys, values)
    return cache


def reserved_cache(config: Any, rooms: list[tuple[torch.Tensor, torch.Tensor]], used: int) -> DynamicCache:
    """A cache over rooms made ahead, per layer keys and values [rows, heads, capacity, dim] whose
    first `used` columns hold states; layers of other kinds copy those columns in."""
    cache = DynamicCache(config=config)
    for index, (keys, values) in enumerate(rooms):
        layer = cache.layers[index]
        if isinstance(layer, DynamicLayer):
            layer = cache.layers[index] = ReservedLayer(keys.shape[-2])
            layer.adopt(keys, values, used)
        else:
            layer.update(keys[..., :used, :], values[..., :used, :])
    return cache


def cache_argument(model: Any) -> str:
    """The keyword the model's forward takes its KV cache by: `cache` where transformers has it
    (5.24 deprecates `past_key_values`, to be removed in 5.40), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_argument(type(base))


@functools.cache
def _cache_argument(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def forward_with_cache(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                       cache: DynamicCache, **kwargs: Any) -> Any:
    """The model's forward of `input_ids` at `positions` [rows, fed] after the states in `cache`,
    which it extends; `mask` [rows, columns] is 1 on each row's tokens, the fed ones last."""
    return model(input_ids=input_ids, position_ids=positions, use_cache=True,
                 attention_mask=attention_mask(model.config, mask, positions), **{cache_argument(model): cache}, **kwargs)
