"""The training loss from logits at the positions that predict a completion token, and nowhere else.

Loss is on completion tokens only, so the output head's logits are needed only at the position
before each of them; a stock causal-LM forward computes them at every position (prompt and padding
too) and casts them all to fp32 for the softmax. On ax's GPU training bench, where few of the
positions predict a completion token, computing the head there only cut the GPU kernel time of a
step (`python bench/train_throughput.py --cuda ... --profile`; figures in the README's Measured
section). Here a pre-hook on the head keeps only the
hidden states of those positions, so the model's own head and its final logit processing
(soft-capping, scaling) run on them alone, and the loss is transformers' causal-LM loss over the
same targets.

The positions are computed on the host, by the collators (`loss_positions`): deriving them from
labels already on the GPU would read a count back, waiting for the step in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ax.adapters.dataset import IGNORE_INDEX
from ax.errors import AxError

LOSS_POSITIONS_KEY = "loss_positions"


def _next_labels(labels: torch.Tensor) -> torch.Tensor:
    """[rows, width] -> [rows * width]: the label each position predicts (the next one in its row)."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)


def loss_positions(labels: torch.Tensor) -> torch.Tensor:
    """Indices into the flattened [rows * width] batch of the positions whose next token is a label."""
    return (_next_labels(labels) != IGNORE_INDEX).nonzero().squeeze(1)


@contextlib.contextmanager
def logits_at(model: Any, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, `model`'s output head sees the hidden states at `positions` only: its logits
    come out [len(positions), vocab] instead of [rows, width, vocab]."""
    head = model.get_output_embeddings()
    if head is None:
        raise AxError(f"{type(model).__name__} has no output head (get_output_embeddings() is None): "
                      "it is not a causal language model ax can train")

    def gather(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1])[positions], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def completion_loss(logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor,
                    num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """transformers' causal-LM loss (ForCausalLMLoss) from `logits_at`'s logits: summed over the
    targets and divided by `num_items_in_batch` when given (the Trainer's count over an accumulated
    batch), else their mean."""
    targets = _next_labels(labels)[positions]
    flat = logits.reshape(-1, logits.shape[-1]).float()
    if num_items_in_batch is None:
        return F.cross_entropy(flat, targets)
    total = F.cross_entropy(flat, targets, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
