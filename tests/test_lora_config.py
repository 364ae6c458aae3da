"""LoRA settings: the shipped file, per-domain overrides, errors that name file, key and value, target modules."""

from __future__ import annotations

import pytest
import torch

from ax.adapters.config import DEFAULT_CONFIG_PATH, LoraTrainingConfig, load_config
from ax.adapters.peft_model import load_training_base, resolve_target_modules
from ax.errors import AxError


def write(tmp_path, text: str):
    path = tmp_path / "lora_config.yaml"
    path.write_text(text)
    return path


def test_shipped_file_loads_with_the_documented_defaults():
    config = load_config()
    assert DEFAULT_CONFIG_PATH.is_file()
    assert (config.r, config.lora_alpha, config.weight_decay, config.learning_rate) == (16, 32.0, 1e-5, 3e-4)
    assert config.use_rslora and not config.use_dora and config.target_modules == "auto"
    assert config.lr_scheduler_type == "cosine" and config.bf16 == "auto"


def test_domain_overrides_apply_to_that_domain_only(tmp_path):
    path = write(tmp_path, "lora:\n  r: 8\n  weight_decay: 1e-4\ndomains:\n  legal:\n    r: 32\n")
    assert load_config(path, "legal").r == 32
    assert load_config(path, "legal").weight_decay == 1e-4  # inherited; "1e-4" is a YAML string, coerced
    assert load_config(path, "finance").r == 8
    assert load_config(path).r == 8


@pytest.mark.parametrize("text, named", [
    ("lora:\n  rank: 16\n", ["lora.rank", "16"]),
    ("lora:\n  r: -4\n", ["lora.r", "-4"]),
    ("lora:\n  lora_dropout: 1.5\n", ["lora.lora_dropout", "1.5"]),
    ("lora:\n  batching: shuffle\n", ["lora.batching", "shuffle"]),
    ("lora:\n  target_modules: []\n", ["lora.target_modules"]),
    ("lora:\n  max_batch_tokens: 0\n", ["lora.max_batch_tokens", "0"]),
    ("domains:\n  legal:\n    weight_decay: lots\n", ["domains.legal.weight_decay", "lots"]),
    ("lora:\n  loraplus_lr_ratio: 16\n  optimizer: sgd\n", ["lora", "loraplus_lr_ratio", "sgd"]),
    ("train:\n  r: 4\n", ["train"]),
    ("lora: [1, 2]\n", ["lora"]),
    ("lora:\n  r: [unclosed\n", ["not valid YAML"]),
])
def test_bad_files_name_the_file_key_and_value(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(AxError) as error:
        load_config(path, "legal")
    assert str(path) in str(error.value)
    for part in named:
        assert part in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AxError, match="Cannot read LoRA config"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_validated_and_none_means_keep():
    config = LoraTrainingConfig()
    assert config.with_overrides(r=4, weight_decay=None).r == 4
    assert config.with_overrides(weight_decay=0.0).weight_decay == 0.0
    with pytest.raises(AxError, match=r"learning_rate = -1"):
        config.with_overrides(learning_rate=-1)


@pytest.mark.parametrize("batch, accumulation, cap, width, cuda, expected", [
    (8, 4, "auto", 400, False, (4, 8)),   # 8 x 400 tokens over the CPU's 2048: 4 rows, twice the steps
    (8, 4, "auto", 820, False, (2, 16)),
    (4, 1, "auto", 3000, False, (1, 4)),  # one example wider than the cap: one row a batch
    (8, 4, "auto", 820, True, (8, 4)),    # no cap on a GPU unless one is set
    (8, 1, 3000, 1577, True, (1, 8)),
    (3, 1, 4096, 2000, False, (1, 3)),    # 2 rows fit, but 2 does not divide a step's 3 examples
    (8, 4, None, 5000, False, (8, 4)),
    (8, 4, "auto", 250, False, (8, 4)),
])
def test_micro_batches_keep_each_step_s_examples_within_the_token_cap(batch, accumulation, cap, width, cuda, expected):
    config = LoraTrainingConfig(per_device_batch_size=batch, gradient_accumulation_steps=accumulation,
                                max_batch_tokens=cap)
    split = config.micro_batches(width, cuda)
    assert (split.per_device_batch_size, split.gradient_accumulation_steps) == expected
    assert split.per_device_batch_size * split.gradient_accumulation_steps == batch * accumulation


def test_bf16_auto_follows_cuda():
    assert LoraTrainingConfig().use_bf16(cuda_available=True)
    assert not LoraTrainingConfig().use_bf16(cuda_available=False)
    assert not LoraTrainingConfig(bf16=False).use_bf16(cuda_available=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_lora_step_of_a_bf16_cpu_run_trains_under_bf16_autocast(tiny_model_dir, tmp_path, monkeypatch, dtype):
    from ax.adapters.dataset import TrainingPair
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model
    from ax.optimizers import lora_step

    backend = LocalBackend(load_model(str(tiny_model_dir), dtype=dtype))
    lm = Client(backend, model_name="tiny", cache=False).lm()
    try:
        assert lora_step.run_precision(LoraTrainingConfig(), lm).bf16 == (True if dtype == "bfloat16" else "auto")
        assert lora_step.run_precision(LoraTrainingConfig(bf16=False), lm).bf16 is False  # the user's choice stands
        loads = []  # the base it trains on is loaded in the run's dtype, whatever the default
        monkeypatch.setattr(lora_step, "load_training_base", lambda *args, **kwargs: loads.append(kwargs) or 1 / 0)
        monkeypatch.setenv("AX_DTYPE", "float16")
        with pytest.raises(ZeroDivisionError):
            lora_step.train_into_client(lm, [TrainingPair(prompt="q", completion="a")], LoraTrainingConfig(),
                                        name="x", target=tmp_path / "x", domain="d", training_data="labels")
        assert loads[0]["dtype"] == dtype
    finally:
        backend.close()


class _Unknown(torch.nn.Module):
    """An architecture ax has no target set for: a block of Linear layers and an output head."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"model_type": "mystery"})()
        self.mix = torch.nn.Linear(4, 4)
        self.gate = torch.nn.Sequential(torch.nn.Linear(4, 4))
        self.head = torch.nn.Linear(4, 10)

    def get_output_embeddings(self):
        return self.head


def test_target_modules_per_architecture(tiny_model_dir, caplog):
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert resolve_target_modules(llama, LoraTrainingConfig()) == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_target_modules(llama, LoraTrainingConfig(target_modules=["q_proj"])) == ["q_proj"]
    with caplog.at_level("WARNING"):
        assert resolve_target_modules(_Unknown(), LoraTrainingConfig()) == ["gate.0", "mix"]
    assert "mystery" in caplog.text and "except the head" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_qlora_without_cuda_is_a_clear_error(tiny_model_dir):
    with pytest.raises(AxError, match="qlora_4bit needs a CUDA GPU"):
        load_training_base(str(tiny_model_dir), LoraTrainingConfig(qlora_4bit=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qlora_without_bitsandbytes_is_a_clear_error(tiny_model_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(AxError, match="bitsandbytes"):
        load_training_base(str(tiny_model_dir), LoraTrainingConfig(qlora_4bit=True))
