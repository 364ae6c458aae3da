"""The model being trained: the base (4-bit for QLoRA) with fresh LoRA layers from the config."""

from __future__ import annotations

import logging
from importlib import util as importlib_util
from typing import Any

from ax.adapters.config import ARCHITECTURE_TARGETS, LoraTrainingConfig
from ax.errors import AxError
from ax.model import LoadedModel, _hub_fingerprint, load_model, local_directory, resolve, weights_fingerprint

log = logging.getLogger(__name__)


def _target_name(module_path: str) -> str:
    """PEFT matches a target against the end of a module's path: the last part, unless that is a bare index."""
    last = module_path.rsplit(".", 1)[-1]
    return module_path if last.isdigit() else last


def resolve_target_modules(model: Any, config: LoraTrainingConfig) -> list[str]:
    """The module names LoRA wraps: the config's list, or the architecture's default set for 'auto'.

    An architecture without a known set gets every Linear layer except the output head, and the
    choice is logged so that nobody trains on a guess without seeing it.
    """
    import torch

    if config.target_modules != "auto":
        return list(config.target_modules)
    arch = getattr(model.config, "model_type", None)
    if arch in ARCHITECTURE_TARGETS:
        return list(ARCHITECTURE_TARGETS[arch])
    head = model.get_output_embeddings()
    names = sorted({_target_name(name) for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and module is not head})
    if not names:
        raise AxError(f"Model architecture {arch!r} has no Linear layers for LoRA; set target_modules in the config.")
    log.warning("No LoRA target set known for architecture %r: using all Linear layers except the head: %s",
                arch, names)
    return names


def peft_lora_config(model: Any, config: LoraTrainingConfig) -> Any:
    """PEFT's LoraConfig for this model and these settings."""
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM", r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=resolve_target_modules(model, config), use_rslora=config.use_rslora,
        use_dora=config.use_dora,
    )


def require_qlora() -> None:
    """QLoRA's 4-bit base needs bitsandbytes kernels on a CUDA GPU; say so before loading anything."""
    import torch

    if not torch.cuda.is_available():
        raise AxError("qlora_4bit needs a CUDA GPU (bitsandbytes 4-bit kernels); none is available. "
                      "Set qlora_4bit: false to train a plain LoRA adapter on this machine.")
    if importlib_util.find_spec("bitsandbytes") is None:
        raise AxError("qlora_4bit needs the 'bitsandbytes' package: pip install bitsandbytes")


def load_training_base(spec: str | None, config: LoraTrainingConfig, *, device: str | None = None,
                       dtype: str | None = None) -> LoadedModel:
    """The base model for training: as `ax.model.load_model` gives it, or NF4-quantized for QLoRA.

    The 4-bit base keeps the full-precision model's fingerprint, so its adapters load on that base.
    """
    if not config.qlora_4bit:
        return load_model(spec, device=device, dtype=dtype)
    require_qlora()
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig


    source = resolve(spec)
    directory = local_directory(source)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantization,
                                                 dtype=torch.bfloat16, device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The same fingerprint rule as ax.model.load_model, so adapters trained here load on the full base.
    fingerprint = weights_fingerprint(directory) if not isinstance(directory, str) else _hub_fingerprint(model)
    return LoadedModel(model, tokenizer, source.name, directory, fingerprint, "cuda", torch.bfloat16)


def attach_lora(model: Any, config: LoraTrainingConfig, adapter_name: str = "default") -> Any:
    """Wrap the base in a PeftModel with new, trainable LoRA layers (the base stays frozen)."""
    from peft import get_peft_model

    return get_peft_model(model, peft_lora_config(model, config), adapter_name=adapter_name)
