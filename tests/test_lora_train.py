"""Training on the tiny model: loss falls on a memorizable set, saved adapters reload exactly, crashes resume."""

from __future__ import annotations

import pytest
import torch

from ax.adapters.collate import PadCollator
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import TrainingPair, encode_pairs
from ax.adapters.peft_model import attach_lora
from ax.adapters.train import AdapterTrainer, loraplus_optimizer, train_adapter, train_and_save
from ax.client.prompting import completion_text, render_chat
from ax.errors import AxError
from ax.model import load_model
from conftest import crash_training_at_step

FAST = dict(per_device_batch_size=4, learning_rate=1e-2, warmup_ratio=0.0, lora_dropout=0.0, r=8, lora_alpha=16,
            dev_fraction=0.0, logging_steps=50)


@pytest.fixture
def base(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def pairs(tiny_model_dir):
    """Eight questions whose answers (yes/no by parity) a few steps can memorize."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return [TrainingPair(prompt=render_chat(tokenizer, [{"role": "user", "content": f"Is {i} odd?"}]),
                         completion=completion_text([("answer", "yes" if i % 2 else "no")])) for i in range(8)]


def completion_loss(model, tokenizer, pairs) -> float:
    batch = PadCollator(tokenizer.pad_token_id)(encode_pairs(tokenizer, pairs, 512).examples)
    batch.pop("num_real_tokens")
    batch.pop("loss_positions")
    with torch.no_grad():
        return model(**batch).loss.item()


@pytest.mark.parametrize("batching", ["group_by_length", "packing", "fixed_packing"])
def test_training_lowers_loss_on_a_memorizable_set(base, pairs, tmp_path, batching):
    before = completion_loss(base.model.eval(), base.tokenizer, pairs)
    # fixed_packing: rows of 80 tokens hold two examples each (36-38 tokens), so a step of 4 rows is an epoch
    config = LoraTrainingConfig(max_steps=12, save_steps=100, batching=batching, max_seq_length=80, **FAST)
    result = train_adapter(base, pairs, config, run_dir=tmp_path / "run", dev_pairs=pairs[:4])
    after = completion_loss(result.model, base.tokenizer, pairs)
    assert after < 0.3 * before, (before, after)
    m = result.metrics
    assert m.steps == 12 and m.eval_loss is not None and m.eval_loss < 0.3 * before
    assert m.train_examples == 8 and m.dev_examples == 4 and m.dropped_examples == 0
    epochs = 12 if batching == "fixed_packing" else 6  # else 12 steps x 4 = 48 examples = 6 epochs of 8
    assert m.tokens_seen == epochs * m.train_tokens  # padding excluded
    assert m.steady_tokens_per_second > 0
    assert m.tokens_per_second > 0 and m.wall_time_s > 0
    assert result.config.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without a GPU")
def test_accumulated_steps_report_the_loss_of_one_batch_as_large(tiny_model_dir, pairs, tmp_path):
    """The loss (logits at completion positions, completion_loss.py) is normalized over the whole accumulated
    batch, as transformers' own causal-LM loss is: 2 x 2 examples give the loss of one batch of 4."""
    losses = []
    for batch, accumulation in ((4, 1), (2, 2)):
        config = LoraTrainingConfig(**{**FAST, "per_device_batch_size": batch}, gradient_accumulation_steps=accumulation,
                                    max_steps=1, save_steps=100, batching="packing")
        result = train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / str(batch))
        losses.append(result.metrics.train_loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_a_token_cap_splits_batches_into_accumulated_steps_of_the_same_examples(tiny_model_dir, pairs, tmp_path,
                                                                                caplog):
    """max_batch_tokens of two examples' width: batches of 4 train as 2 x 2 accumulated, and the
    adapter comes out as without the cap (the same examples each step, the loss over all of them), up
    to summation order, which Adam's first steps magnify where a gradient is near zero."""
    caplog.set_level("INFO", logger="ax.adapters.train")
    weights, losses = [], []
    for cap in (None, 80):
        config = LoraTrainingConfig(**FAST, max_batch_tokens=cap, max_steps=3, save_steps=100)
        result = train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / str(cap))
        weights.append({k: v.detach().clone() for k, v in result.model.state_dict().items() if "lora_" in k})
        losses.append(result.metrics.train_loss)
    assert "Device batches of 2 rows and 2 accumulation steps instead of 4 and 1" in caplog.text
    assert weights[0].keys() == weights[1].keys() and weights[0]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-3, atol=5e-4)


def test_torch_compile_without_a_gpu_is_refused_before_training(base, pairs, tmp_path):
    config = LoraTrainingConfig(max_steps=2, torch_compile=True, **FAST)
    with pytest.raises(AxError, match="torch_compile: true .* CUDA GPU"):
        train_adapter(base, pairs, config, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_saved_adapter_loads_in_plain_peft_with_the_same_logits(base, pairs, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = LoraTrainingConfig(max_steps=6, save_steps=100, **FAST)
    result, manifest = train_and_save(base, pairs, config, domain="toy", target=tmp_path / "store" / "toy")
    assert manifest.metrics["steps"] == 6 and manifest.training_data_hash == result.data_hash
    assert not (tmp_path / "store" / ".runs" / "toy").exists()  # checkpoints removed once saved

    fresh = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "store" / "toy")
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(input_ids=ids).logits, result.model(input_ids=ids).logits)
        with fresh.disable_adapter():
            assert not torch.allclose(fresh(input_ids=ids).logits, result.model(input_ids=ids).logits)


def test_resume_continues_from_the_last_checkpoint(tiny_model_dir, pairs, tmp_path, monkeypatch):
    config = LoraTrainingConfig(max_steps=4, save_steps=2, **FAST)
    uninterrupted = train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / "clean")

    real = AdapterTrainer.compute_loss
    crash_training_at_step(monkeypatch, 4)
    with pytest.raises(RuntimeError, match="power cut"):
        train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / "run")
    monkeypatch.setattr(AdapterTrainer, "compute_loss", real)

    resumed = train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / "run", resume=True)
    assert resumed.metrics.resumed_from_step == 2 and resumed.metrics.steps == 4
    assert resumed.metrics.tokens_seen < uninterrupted.metrics.tokens_seen  # only steps 3-4 ran this time
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        torch.testing.assert_close(resumed.model(input_ids=ids).logits, uninterrupted.model(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-4)

    with pytest.raises(AxError, match="other data or settings"):
        train_adapter(load_model(str(tiny_model_dir)), pairs[:6], config, run_dir=tmp_path / "run", resume=True)
    fresh = train_adapter(load_model(str(tiny_model_dir)), pairs, config, run_dir=tmp_path / "run")
    assert fresh.metrics.resumed_from_step is None


def test_loraplus_gives_b_matrices_a_higher_learning_rate(base):
    model = attach_lora(base.model, LoraTrainingConfig(loraplus_lr_ratio=16, learning_rate=1e-3))
    optimizer = loraplus_optimizer(model, LoraTrainingConfig(loraplus_lr_ratio=16, learning_rate=1e-3))
    rates = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            rates[id(parameter)] = group["lr"]
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    assert {rates[i] for i, n in names.items() if "lora_A" in n} == {1e-3}
    assert [rates[i] for i, n in names.items() if "lora_B" in n] == pytest.approx([16e-3] * 14)
    assert loraplus_optimizer(model, LoraTrainingConfig()) is None


def test_no_examples_or_all_too_long_is_a_clear_error(base, pairs, tmp_path):
    with pytest.raises(AxError, match="No training examples"):
        train_adapter(base, [], LoraTrainingConfig(), run_dir=tmp_path)
    with pytest.raises(AxError, match="longer than max_seq_length=8"):
        train_adapter(base, pairs, LoraTrainingConfig(max_seq_length=8), run_dir=tmp_path)
