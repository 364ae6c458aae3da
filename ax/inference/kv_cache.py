"""Where decoding keeps keys and values: rooms reserved ahead, one slot a row.

transformers' DynamicLayer concatenates every step, copying the whole cache, and holds its rows
at one width. Here each layer's keys and values live in room made for every row's prompt and
every token it may still generate, and a step writes its columns in place. A row's slot holds
its states from column 0, one column a position, so rows of any lengths share the rooms with no
padding, and a joining row takes a finished row's slot without the others' states being copied
anywhere; sliding-window layers keep every column too, their windows being applied by the masks
(ax/inference/row_attention.py). So a prefix's states, read from a row's slot for the prefix
cache, hold every column its later rows need, where transformers' sliding-window cache drops them.
"""

from __future__ import annotations

import torch

# Capacity grows in steps of this many columns, so rows joining with a little more to hold do
# not copy the rooms each time.
_COLUMN_STEP = 64


class Rooms:
    """Per layer, keys and values [slots, kv heads, capacity, head dim], made on a layer's first use
    (its shapes are the model's) and remade larger, keeping what they hold, when `reserve` asks."""

    def __init__(self) -> None:
        self._rooms: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.slots = self.capacity = 0

    def reserve(self, slots: int, capacity: int) -> None:
        self.slots = max(self.slots, slots)
        if capacity > self.capacity:
            self.capacity = -(-capacity // _COLUMN_STEP) * _COLUMN_STEP

    def layer(self, index: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `index`'s rooms, for states shaped as `like` [rows, kv heads, columns, head dim]."""
        room = self._rooms.get(index)
        if room is None or room[0].shape[0] < self.slots or room[0].shape[2] < self.capacity:
            # Zeros, not empty: a slot's unused columns enter attention masked, and 0 x NaN is NaN.
            grown = tuple(like.new_zeros((self.slots, like.shape[1], self.capacity, like.shape[-1])) for _ in range(2))
            if room is not None:
                for new, old in zip(grown, room):
                    new[: old.shape[0], :, : old.shape[2]].copy_(old)
            self._rooms[index] = room = grown
        return room

    def write(self, slot: int, states: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> None:
        """Put per-layer states [1, kv heads, columns, head dim] at the start of `slot`."""
        for index, (keys, values) in enumerate(states):
            for room, source in zip(self.layer(index, keys), (keys, values)):
                room[slot, :, : source.shape[2]].copy_(source[0])

    def read(self, slot: int, columns: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Copies of the first `columns` states of `slot`, per layer [1, kv heads, columns, head dim]."""
        return tuple(tuple(t[slot: slot + 1, :, :columns].clone() for t in self._rooms[index])
                     for index in sorted(self._rooms))
