"""Batches for training: pad to the longest example of the batch, or pack several examples per row.

Padding to a fixed max length spends most of a step on pad tokens when examples vary in length.
`PadCollator` pads only to the batch's longest (with length-grouped sampling, rows are near one
length), on the right and with no attention mask: padding comes after every real token of its row,
so the causal mask alone keeps it out of their attention, and attention runs its causal kernel
instead of one taking a mask (faster, in less memory: `python bench/cpu_train_precision.py`, figures
in the README). `PackingCollator` lays several examples end to end in rows no longer than the batch's
longest example and restarts `position_ids` at each; with no attention mask, transformers reads
those restarts as sequence boundaries and builds a block-diagonal causal mask, so packed examples
never attend to each other. Rows that long mean packing never computes more padded tokens, nor a
larger attention matrix, than padding the same batch would. `FixedPackingCollator` batches rows
packed once over the whole data set (`pack_dataset`, as TRL's packing does) to one width, so
every step has the same shape, which compiled layers need.

Each batch also carries `num_real_tokens` (non-padding tokens, a Python int: the Trainer moves
tensors to the GPU, and reading one back there would wait for the step in flight) for the
trainer's throughput count, and `loss_positions` (where logits are needed, completion_loss.py);
`AdapterTrainer` removes both before the forward pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ax.adapters.completion_loss import LOSS_POSITIONS_KEY, loss_positions
from ax.adapters.dataset import IGNORE_INDEX
from ax.adapters.kernels.shared_prefix import MIN_SHARED, shared_batch, shared_length

REAL_TOKENS_KEY = "num_real_tokens"


def _padded_length(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def _ids(values: list[int]) -> torch.Tensor:
    """A list of token ids as a tensor, through numpy: `torch.tensor` of a Python list converts each
    int on its own, several times slower, and batches are collated while the GPU waits on the next step."""
    return torch.from_numpy(np.asarray(values, dtype=np.int64))


@dataclass
class PadCollator:
    """Right-pads a batch to its longest example, label -100 on padding."""

    pad_token_id: int
    pad_to_multiple_of: int = 1

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = _padded_length(max(len(f["input_ids"]) for f in features), self.pad_to_multiple_of)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = _ids(feature["input_ids"])
            labels[row, :n] = _ids(feature["labels"])
        return {"input_ids": input_ids, "labels": labels, REAL_TOKENS_KEY: sum(len(f["input_ids"]) for f in features),
                LOSS_POSITIONS_KEY: loss_positions(labels)}


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


def _packed_row(features: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    """Examples laid end to end in one row, with the length of each.

    Each example's first label is set to -100: in a packed row the position before it belongs to
    the previous example, and no token should be predicted from another example's text.
    """
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "lengths": []}
    for feature in features:
        row["input_ids"] += feature["input_ids"]
        row["labels"] += [IGNORE_INDEX] + feature["labels"][1:]
        row["lengths"].append(len(feature["input_ids"]))
    return row


def pack_dataset(examples: list[dict[str, list[int]]], width: int) -> list[dict[str, list[int]]]:
    """All examples packed first-fit-decreasing into rows of at most `width` tokens (each a `_packed_row`)."""
    rows = pack_rows([len(e["input_ids"]) for e in examples], width)
    return [_packed_row([examples[i] for i in members]) for members in rows]


def _packed_batch(rows: list[dict[str, list[int]]], width: int, n_rows: int, pad_token_id: int,
                  boundaries: bool) -> dict[str, Any]:
    """Tensors [n_rows, width] for packed rows; rows past `len(rows)` are all padding.

    Padding continues the last example's positions: it comes after every real token, so the
    causal mask already keeps it out of their attention, and its labels are ignored. With
    `boundaries`, the batch also carries the sequences' cumulative lengths over the flattened rows
    under the names of transformers' flash-attention kwargs (ax/adapters/kernels/varlen_attention.py reads
    them; a row's padding belongs to its last example there too).
    """
    input_ids = torch.full((n_rows, width), pad_token_id, dtype=torch.long)
    labels = torch.full((n_rows, width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.arange(width).repeat(n_rows, 1)
    sequences = []
    for r, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[r, :n] = _ids(row["input_ids"])
        labels[r, :n] = _ids(row["labels"])
        start = 0
        for length in row["lengths"]:
            position_ids[r, start:] = torch.arange(width - start)
            start += length
        sequences += row["lengths"][:-1] + [row["lengths"][-1] + width - n]
    sequences += [width] * (n_rows - len(rows))
    batch = {"input_ids": input_ids, "position_ids": position_ids, "labels": labels,
             REAL_TOKENS_KEY: sum(len(row["input_ids"]) for row in rows), LOSS_POSITIONS_KEY: loss_positions(labels)}
    if boundaries:
        cumulative = torch.tensor([0, *itertools.accumulate(sequences)], dtype=torch.int32)
        batch.update(cu_seq_lens_q=cumulative, cu_seq_lens_k=cumulative,
                     max_length_q=max(sequences), max_length_k=max(sequences))
    return batch


@dataclass
class PackingCollator:
    """Packs a batch's examples into as few rows as fit, each no longer than the batch's longest example."""

    pad_token_id: int
    pad_to_multiple_of: int = 1
    boundaries: bool = False  # also give the sequences' cumulative lengths (varlen attention)

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        lengths = [len(f["input_ids"]) for f in features]
        rows = [_packed_row([features[i] for i in members]) for members in pack_rows(lengths, max(lengths))]
        width = _padded_length(max(len(row["input_ids"]) for row in rows), self.pad_to_multiple_of)
        return _packed_batch(rows, width, len(rows), self.pad_token_id, self.boundaries)


@dataclass
class FixedPackingCollator:
    """Batches of rows packed beforehand (`pack_dataset`), every batch [rows_per_batch, width].

    One shape for every step is what compiled layers need (a new shape recompiles them); a last,
    short batch is filled with rows of padding, which count as no tokens.
    """

    pad_token_id: int
    width: int
    rows_per_batch: int
    boundaries: bool = False

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        return _packed_batch(rows, self.width, max(self.rows_per_batch, len(rows)), self.pad_token_id,
                             self.boundaries)


@dataclass
class SharedPrefixCollator:
    """`PadCollator`'s batch, or, where its examples begin with at least `MIN_SHARED` tokens in common,
    one row that holds those tokens once (kernels/shared_prefix.py). Its real tokens are the
    examples' own, as a padded batch counts them, so tokens/s compares with the other batchings."""

    pad_token_id: int
    pad_to_multiple_of: int = 1

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        prefix = shared_length(features)
        if prefix < MIN_SHARED:
            return PadCollator(self.pad_token_id, self.pad_to_multiple_of)(features)
        batch = shared_batch(features, prefix)
        return {**batch, REAL_TOKENS_KEY: sum(len(f["input_ids"]) for f in features),
                LOSS_POSITIONS_KEY: loss_positions(batch["labels"])}


def make_collator(batching: str, pad_token_id: int, pad_to_multiple_of: int = 1, *, rows_per_batch: int = 1,
                  max_seq_length: int = 0, boundaries: bool = False, share_prefix: bool = False) -> Any:
    """The collator for a config's `batching` setting (`boundaries`: packed batches carry varlen kwargs;
    `share_prefix`: length-grouped batches compute their examples' common prefix once).

    fixed_packing's rows are as wide as the longest example allowed, rounded up to the multiple;
    the data must be packed to the collator's `width` (`pack_dataset`)."""
    if batching == "fixed_packing":
        return FixedPackingCollator(pad_token_id, _padded_length(max_seq_length, pad_to_multiple_of),
                                    rows_per_batch, boundaries)
    if batching == "packing":
        return PackingCollator(pad_token_id, pad_to_multiple_of, boundaries)
    if share_prefix:
        return SharedPrefixCollator(pad_token_id, pad_to_multiple_of)
    return PadCollator(pad_token_id, pad_to_multiple_of)
