"""Packed training rows of one shape, attention through the varlen kernel, and compiled decoder layers.

Each must leave the maths alone: packed examples give the loss and LoRA gradients of each example
run alone (the varlen kernel, on a CUDA GPU), and compiled layers those of the eager ones.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from ax.adapters.collate import FixedPackingCollator, PackingCollator, pack_dataset
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import IGNORE_INDEX
from ax.adapters.kernels import varlen_attention as varlen_module
from ax.adapters.kernels.compiled_layers import compiled_layers, decoder_layers
from ax.adapters.kernels.varlen_attention import IMPLEMENTATION, fa4_available, varlen_attention, varlen_supported
from ax.adapters.peft_model import attach_lora
from tiny_model import randomize_lora_b

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=96, max_position_embeddings=256)


def features(lengths: list[int], seed: int = 0) -> list[dict[str, list[int]]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(0, 96, (n,), generator=generator).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 3) + ids[n // 3:]})
    return out


def test_fixed_packing_gives_every_batch_one_shape_and_the_sequence_boundaries():
    examples = features([7, 3, 5, 9, 4])
    rows = pack_dataset(examples, 12)
    assert [row["lengths"] for row in rows] == [[9, 3], [7, 5], [4]]
    collate = FixedPackingCollator(pad_token_id=0, width=12, rows_per_batch=2, boundaries=True)
    full, short = collate(rows[:2]), collate(rows[2:])
    assert full["input_ids"].shape == short["input_ids"].shape == (2, 12)
    assert full["num_real_tokens"] == 24 and short["num_real_tokens"] == 4
    # Sequences over the flattened rows; a row's padding belongs to its last example, and a row of
    # padding only (filling the short batch) is one sequence of its own.
    assert full["cu_seq_lens_q"].tolist() == [0, 9, 12, 19, 24]
    assert short["cu_seq_lens_q"].tolist() == [0, 12, 24] and short["max_length_q"] == 12
    assert full["max_length_q"] == full["max_length_k"] == 9
    assert full["position_ids"][0].tolist() == list(range(9)) + list(range(3))
    assert (short["labels"][1] == IGNORE_INDEX).all() and (short["input_ids"][1] == 0).all()
    # Each example's first label is dropped (it would be predicted from the example before it).
    assert full["labels"][0, 9] == IGNORE_INDEX and full["labels"][0, 10:12].tolist() == examples[1]["labels"][1:]


def test_per_batch_packing_gives_boundaries_only_when_asked():
    examples = features([7, 3, 4])
    assert "cu_seq_lens_q" not in PackingCollator(pad_token_id=0)(examples)
    batch = PackingCollator(pad_token_id=0, boundaries=True)(examples)
    assert batch["input_ids"].shape == (2, 7) and batch["cu_seq_lens_q"].tolist() == [0, 7, 11, 14]


def _lora(config_name: str, device: str, dtype: torch.dtype, **settings):
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**{**SHAPES, **settings})
    model = AutoModelForCausalLM.from_config(config, dtype=dtype).to(device)
    peft = attach_lora(model, LoraTrainingConfig(r=4, lora_alpha=8, lora_dropout=0.0))
    randomize_lora_b(peft)
    return model, peft.train()


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    # No cache, as the Trainer runs it: with one, transformers reads no sequence boundaries from position_ids.
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    return loss.detach().float(), {n: p.grad.float() for n, p in model.named_parameters() if p.requires_grad}


EXAMPLES = features([40, 9, 23, 31, 5, 17], seed=2)


def _packed_batch(device: str, boundaries: bool):
    rows = pack_dataset(EXAMPLES, 48)
    batch = FixedPackingCollator(pad_token_id=0, width=48, rows_per_batch=4, boundaries=boundaries)(rows)
    batch.pop("num_real_tokens")
    batch.pop("loss_positions")
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _alone_loss_and_grads(model, device: str):
    """What packing must give: each example through the model alone, the loss averaged over all label
    tokens but each example's first (which a packed row cannot predict from the example before it)."""
    total, count = 0.0, 0
    for example in EXAMPLES:
        logits = model(input_ids=torch.tensor([example["input_ids"]], device=device)).logits[0, :-1].float()
        labels = torch.tensor(example["labels"][1:], device=device)
        kept = labels != IGNORE_INDEX
        total = total + torch.nn.functional.cross_entropy(logits[kept], labels[kept], reduction="sum")
        count += int(kept.sum())
    model.zero_grad(set_to_none=True)
    loss = total / count
    loss.backward()
    return loss.detach(), {n: p.grad.float() for n, p in model.named_parameters() if p.requires_grad}


def _relative_errors(got: dict, expected: dict) -> dict[str, float]:
    return {name: ((got[name] - grad).norm() / grad.norm()).item() for name, grad in expected.items()}


@CUDA
@pytest.mark.parametrize("kernel", ["torch", "fa4"])
@pytest.mark.parametrize("config_name,settings", [("LlamaConfig", {}), ("MistralConfig", {"sliding_window": 8})])
def test_varlen_attention_gives_each_examples_own_loss_and_gradients(config_name, settings, kernel, monkeypatch):
    # FlashAttention 4 runs only at head dims that are multiples of 32: these heads are 64 wide.
    wide = {"hidden_size": 256} if kernel == "fa4" else {}
    base, model = _lora(config_name, "cuda", torch.bfloat16, **settings, **wide)
    assert varlen_supported(base, torch.bfloat16) and not varlen_supported(base, torch.float32)
    if kernel == "fa4" and not fa4_available(base):
        pytest.skip("FlashAttention 4 is not installed or has no kernels for this GPU")
    if kernel == "torch":
        monkeypatch.setattr(varlen_module, "fa4_available", lambda model: False)
    loss, grads = _alone_loss_and_grads(model, "cuda")
    masked_loss, masked_grads = _loss_and_grads(model, _packed_batch("cuda", boundaries=False))
    own = base.config._attn_implementation
    with varlen_attention(base):
        assert base.config._attn_implementation == IMPLEMENTATION
        varlen_loss, varlen_grads = _loss_and_grads(model, _packed_batch("cuda", boundaries=True))
        # A control: every row one sequence, its examples attending to each other.
        crossed = _packed_batch("cuda", boundaries=True)
        rows = torch.arange(0, 4 * 48 + 1, 48, dtype=torch.int32, device="cuda")
        crossed.update(cu_seq_lens_q=rows, cu_seq_lens_k=rows, max_length_q=48, max_length_k=48)
        _, crossed_grads = _loss_and_grads(model, crossed)
    assert base.config._attn_implementation == own
    torch.testing.assert_close(varlen_loss, loss, rtol=1e-3, atol=1e-3)
    errors, crossed_errors = _relative_errors(varlen_grads, grads), _relative_errors(crossed_grads, grads)
    assert max(errors.values()) < 1e-2, errors
    assert min(crossed_errors.values()) > 10 * max(errors.values()), crossed_errors
    # transformers' block-diagonal mask (the path without boundaries) agrees, to bf16's precision.
    torch.testing.assert_close(masked_loss, loss, rtol=1e-2, atol=1e-2)
    assert max(_relative_errors(masked_grads, grads).values()) < 5e-2


@CUDA
def test_fa4_is_used_on_hopper_and_blackwell_only_at_head_dims_where_its_backward_is_right(monkeypatch):
    monkeypatch.setattr(varlen_module, "_fa4_interface", lambda: object())  # as if installed
    narrow, _ = _lora("LlamaConfig", "cuda", torch.bfloat16)  # heads 16 wide
    wide, _ = _lora("LlamaConfig", "cuda", torch.bfloat16, hidden_size=256)  # 64 wide
    assert not fa4_available(narrow)
    assert fa4_available(wide) == (torch.cuda.get_device_capability()[0] in (9, 10))


def test_varlen_needs_a_gpu_and_half_precision():
    base, _ = _lora("LlamaConfig", "cpu", torch.float32)
    assert not varlen_supported(base, torch.bfloat16)


def test_compiled_layers_give_the_eager_loss_and_gradients_and_are_undone():
    base, model = _lora("LlamaConfig", "cpu", torch.float32)
    batch = _packed_batch("cpu", boundaries=False)
    loss, grads = _loss_and_grads(model, batch)
    # The eager backend traces and runs the captured graphs without a compiler, which a clean CPU
    # machine may lack; inductor itself runs in the CUDA training test.
    with compiled_layers(model, backend="aot_eager") as count:
        assert count == 2 == len(decoder_layers(model))
        compiled_loss, compiled_grads = _loss_and_grads(model, batch)
    assert all(layer._compiled_call_impl is None for layer in decoder_layers(model))
    torch.testing.assert_close(compiled_loss, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
