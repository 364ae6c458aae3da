"""Logits at the completion positions only: the loss and gradients of the model's own loss over every position."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from ax.adapters.collate import REAL_TOKENS_KEY, FixedPackingCollator, PackingCollator, PadCollator, pack_dataset
from ax.adapters.completion_loss import LOSS_POSITIONS_KEY, completion_loss, logits_at, loss_positions
from ax.adapters.dataset import IGNORE_INDEX

# Prompts (label -100) then completions, of several lengths, so rows hold padding and packed examples.
FEATURES = [{"input_ids": [(7 * n + i) % 300 + 3 for i in range(n)],
             "labels": [IGNORE_INDEX] * (n - k) + [(7 * n + i) % 300 + 3 for i in range(n - k, n)]}
            for n, k in ((11, 4), (5, 2), (16, 6), (8, 3), (13, 5))]
COLLATORS = {
    "pad": PadCollator(pad_token_id=0),
    "packing": PackingCollator(pad_token_id=0),
    "fixed_packing": lambda features: FixedPackingCollator(pad_token_id=0, width=24, rows_per_batch=4)(
        pack_dataset(features, 24)),
}


def test_loss_positions_are_those_before_each_label_of_their_row():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 7, 8], [9, 5, IGNORE_INDEX, IGNORE_INDEX]])
    # Row 0 predicts its labels from positions 1 and 2; row 1's first label has no position before it.
    assert loss_positions(labels).tolist() == [1, 2, 4]


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("batching", sorted(COLLATORS))
@pytest.mark.parametrize("num_items", [None, 40])  # 40: the Trainer's count over an accumulated batch
def test_logits_at_completion_positions_give_the_full_loss_and_gradients(tiny_model_dir, batching, num_items):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = COLLATORS[batching](FEATURES)
    batch.pop(REAL_TOKENS_KEY)
    positions = batch.pop(LOSS_POSITIONS_KEY)
    assert len(positions) == sum(1 for f in FEATURES for label in f["labels"][1:] if label != IGNORE_INDEX)
    expected = model(**batch, use_cache=False, num_items_in_batch=num_items).loss
    expected.backward()
    expected_grads = _grads(model)

    labels = batch.pop("labels")
    head = model.get_output_embeddings()
    with logits_at(model, positions):
        logits = model(**batch, use_cache=False).logits
    assert not head._forward_pre_hooks
    assert logits.shape[-2:] == (len(positions), model.config.vocab_size)
    loss = completion_loss(logits, labels, positions, num_items)
    loss.backward()
    torch.testing.assert_close(loss, expected)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)
