"""LoRA training's CUDA paths: bf16 and QLoRA (NF4 base) train, save, and reload on the full-precision base.

Skipped without a CUDA GPU; QLoRA also needs bitsandbytes.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import TrainingPair
from ax.adapters.peft_model import load_training_base
from ax.adapters.train import train_and_save
from ax.client.prompting import completion_text, render_chat
from ax.inference.local import LocalBackend
from ax.model import load_model

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

FAST = dict(max_steps=6, per_device_batch_size=4, learning_rate=1e-2, warmup_ratio=0.0, lora_dropout=0.0,
            dev_fraction=0.0, save_steps=100, logging_steps=50)


def pairs(tokenizer) -> list[TrainingPair]:
    return [TrainingPair(prompt=render_chat(tokenizer, [{"role": "user", "content": f"Is {i} odd?"}]),
                         completion=completion_text([("answer", "yes" if i % 2 else "no")])) for i in range(8)]


@pytest.mark.parametrize("qlora", [False, pytest.param(True, marks=pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes"))])
def test_cuda_training_saves_an_adapter_the_full_base_loads(tiny_model_dir, tmp_path, qlora):
    config = LoraTrainingConfig(qlora_4bit=qlora, **FAST)
    base = load_training_base(str(tiny_model_dir), config)
    assert base.device == "cuda" and base.dtype == torch.bfloat16
    if qlora:
        assert any("4bit" in type(m).__name__ for m in base.model.modules())
    result, manifest = train_and_save(base, pairs(base.tokenizer), config, domain="toy", target=tmp_path / "toy")
    assert result.metrics.steps == 6 and manifest is not None
    full = LocalBackend(load_model(str(tiny_model_dir)))
    full.load_adapter("toy", tmp_path / "toy")  # the manifest's base fingerprint must match the full base
    full.close()


def test_cuda_training_through_fixed_packing_varlen_attention_and_compiled_layers(tiny_model_dir, tmp_path):
    from ax.adapters.kernels.compiled_layers import decoder_layers
    from ax.adapters.kernels.varlen_attention import varlen_supported

    config = LoraTrainingConfig(batching="fixed_packing", torch_compile=True, max_seq_length=80, **FAST)
    base = load_training_base(str(tiny_model_dir), config)
    own = base.model.config._attn_implementation
    assert varlen_supported(base.model, torch.bfloat16)
    result, manifest = train_and_save(base, pairs(base.tokenizer), config, domain="toy", target=tmp_path / "toy")
    assert result.metrics.steps == 6 and manifest is not None
    assert math.isfinite(result.metrics.train_loss) and result.metrics.steady_tokens_per_second > 0
    # Afterwards the model is the plain one again: its own attention, no compiled layers.
    assert base.model.config._attn_implementation == own
    assert all(layer._compiled_call_impl is None for layer in decoder_layers(result.model))
