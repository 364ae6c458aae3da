"""Batches for training: pad to the longest example of the batch, or pack several examples per row.

Padding to a fixed max length spends most of a step on pad tokens when examples vary in length.
`PadCollator` pads only to the batch's longest (with length-grouped sampling, rows are near one
length). `PackingCollator` lays several examples end to end in rows no longer than the batch's
longest example and restarts `position_ids` at each; with no attention mask, transformers reads
those restarts as sequence boundaries and builds a block-diagonal causal mask, so packed examples
never attend to each other. Rows that long mean packing never computes more padded tokens, nor a
larger attention matrix, than padding the same batch would.

Each batch also carries `num_real_tokens` (non-padding tokens, a Python int: the Trainer moves
tensors to the GPU, and reading one back there would wait for the step in flight) for the
trainer's throughput count; `AdapterTrainer` removes it before the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ax.adapters.dataset import IGNORE_INDEX

REAL_TOKENS_KEY = "num_real_tokens"


def _padded_length(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


@dataclass
class PadCollator:
    """Right-pads a batch to its longest example; attention mask 0 and label -100 on padding."""

    pad_token_id: int
    pad_to_multiple_of: int = 1

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = _padded_length(max(len(f["input_ids"]) for f in features), self.pad_to_multiple_of)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"])
            labels[row, :n] = torch.tensor(feature["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                REAL_TOKENS_KEY: int(attention_mask.sum())}


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit-decreasing: indices of examples per row, each row's total length within `capacity`."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if slot is None:
            rows.append([index])
            room.append(capacity - lengths[index])
        else:
            rows[slot].append(index)
            room[slot] -= lengths[index]
    return rows


@dataclass
class PackingCollator:
    """Packs a batch's examples into as few rows as fit, each no longer than the batch's longest example.

    Each example's first label is set to -100: in a packed row the position before it belongs to
    the previous example, and no token should be predicted from another example's text.
    """

    pad_token_id: int
    pad_to_multiple_of: int = 1

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        rows = pack_rows(lengths, max(lengths))
        width = _padded_length(max(sum(lengths[i] for i in row) for row in rows), self.pad_to_multiple_of)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        # Padding continues the last example's positions: it comes after every real token, so the
        # causal mask already keeps it out of their attention, and its labels are ignored.
        position_ids = torch.arange(width).repeat(len(rows), 1)
        for row, members in enumerate(rows):
            start = 0
            for index in members:
                n = lengths[index]
                input_ids[row, start:start + n] = torch.tensor(features[index]["input_ids"])
                labels[row, start + 1:start + n] = torch.tensor(features[index]["labels"][1:])
                position_ids[row, start:] = torch.arange(width - start)
                start += n
        return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels,
                REAL_TOKENS_KEY: sum(lengths)}


def make_collator(batching: str, pad_token_id: int, pad_to_multiple_of: int = 1) -> Any:
    """The collator for a config's `batching` setting."""
    collator = PackingCollator if batching == "packing" else PadCollator
    return collator(pad_token_id, pad_to_multiple_of)
