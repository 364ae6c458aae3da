"""Batches whose examples begin alike, trained with the shared tokens computed once (kernels/shared_prefix.py).

A shared-prefix row must give the padded batch's loss and LoRA gradients (no dropout here, where the
two would draw different masks), and a batch with too little in common is padded as before.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from ax.adapters.collate import PadCollator, SharedPrefixCollator, make_collator
from ax.adapters.completion_loss import LOSS_POSITIONS_KEY, completion_loss, logits_at
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import IGNORE_INDEX
from ax.adapters.kernels.shared_prefix import LAYOUT_KEY, MIN_SHARED, shared_length, shared_prefix_attention
from ax.adapters.peft_model import attach_lora
from ax.errors import AxError
from tiny_model import randomize_lora_b

SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=96, max_position_embeddings=256)


def examples(prefix: int, prompts: list[int], answers: list[int], seed: int = 0) -> list[dict[str, list[int]]]:
    """Examples of a common `prefix` of tokens, then a prompt and an answer (labelled) of their own."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randint(0, 96, (prefix,), generator=generator).tolist()
    out = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        own = torch.randint(0, 96, (prompt + answer,), generator=generator).tolist()
        own[0] = 90 + i  # where the examples part
        out.append({"input_ids": shared + own, "labels": [IGNORE_INDEX] * (prefix + prompt) + own[prompt:]})
    return out


def test_the_shared_prefix_stops_before_a_label_and_its_token_before():
    batch = examples(20, [5, 9, 3], [4, 2, 6])
    assert shared_length(batch) == 20
    # Identical examples (label balancing repeats them) share all but their completion and the token before it.
    twins = [batch[0], dict(batch[0])]
    assert shared_length(twins) == 24
    assert shared_length(batch[:1]) == 0
    unlabelled_early = examples(20, [0, 9], [4, 2])
    assert shared_length(unlabelled_early) == 19


def test_the_collator_lays_one_row_with_the_prefix_once_and_counts_the_examples_tokens():
    batch = examples(20, [5, 9, 3], [4, 2, 6])
    out = SharedPrefixCollator(pad_token_id=0)(batch)
    assert out[LAYOUT_KEY] == (20, (9, 11, 9))
    assert out["input_ids"].shape == (1, 49) and out["num_real_tokens"] == sum(len(e["input_ids"]) for e in batch)
    assert out["position_ids"][0].tolist() == list(range(29)) + list(range(20, 31)) + list(range(20, 29))
    assert out["input_ids"][0, 29:40].tolist() == batch[1]["input_ids"][20:]
    # The labels each position predicts are the examples' own, none across a suffix boundary.
    padded = PadCollator(pad_token_id=0)(batch)
    assert len(out[LOSS_POSITIONS_KEY]) == len(padded[LOSS_POSITIONS_KEY]) == 12
    few = examples(MIN_SHARED - 1, [5, 9], [4, 2])
    assert LAYOUT_KEY not in SharedPrefixCollator(pad_token_id=0)(few)
    assert isinstance(make_collator("group_by_length", 0, share_prefix=True), SharedPrefixCollator)
    assert isinstance(make_collator("group_by_length", 0), PadCollator)


def _loss_and_grads(model, batch):
    batch = dict(batch)
    positions = batch.pop(LOSS_POSITIONS_KEY)
    batch.pop("num_real_tokens")
    labels = batch.pop("labels")
    model.zero_grad(set_to_none=True)
    with logits_at(model, positions):
        logits = model(**batch, use_cache=False).logits
    loss = completion_loss(logits, labels, positions)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_shared_prefix_row_trains_as_the_padded_batch():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(transformers.LlamaConfig(**SHAPES), dtype=torch.float32)
    peft = attach_lora(model, LoraTrainingConfig(r=4, lora_alpha=8, lora_dropout=0.0)).train()
    randomize_lora_b(peft)
    batch = examples(30, [7, 12, 4], [3, 5, 2], seed=3)
    with shared_prefix_attention(model):
        padded_loss, padded_grads = _loss_and_grads(peft, PadCollator(pad_token_id=0)(batch))
        shared_loss, shared_grads = _loss_and_grads(peft, SharedPrefixCollator(pad_token_id=0)(batch))
    torch.testing.assert_close(shared_loss, padded_loss, rtol=1e-5, atol=1e-6)
    assert padded_grads.keys() == shared_grads.keys() and padded_grads
    for name, grad in padded_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_micro_batches_count_the_shared_tokens_once():
    config = LoraTrainingConfig(per_device_batch_size=4, max_batch_tokens=2048)
    assert config.micro_batches(570, cuda_available=False).per_device_batch_size == 2
    shared = config.micro_batches(570, cuda_available=False, shared=224)
    assert (shared.per_device_batch_size, shared.gradient_accumulation_steps) == (4, 1)


def test_share_prefix_is_on_for_length_groups_on_a_cpu_and_refused_with_packing():
    assert LoraTrainingConfig().shares_prefix(cuda_available=False)
    assert not LoraTrainingConfig().shares_prefix(cuda_available=True)
    assert not LoraTrainingConfig(batching="packing").shares_prefix(cuda_available=False)
    assert LoraTrainingConfig(share_prefix=True).shares_prefix(cuda_available=True)
    with pytest.raises(AxError, match=r"share_prefix.*packing"):
        LoraTrainingConfig().with_overrides(share_prefix=True, batching="packing")
