"""LoRA training settings: one validated model, read from `lora_config.yaml` with per-domain overrides.

The file has a `lora:` section with the defaults and an optional `domains:` mapping whose entries
override single keys for one domain (`domains: {legal: {r: 32}}`). Every value is checked here,
before a model is loaded, so a typo fails in a second with the file, key and value named instead
of an hour into training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ax.errors import AxError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("lora_config.yaml")
CPU_BATCH_TOKENS = 2048  # max_batch_tokens 'auto' on a CPU

_ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# LoRA on every linear layer of a block, per architecture (PEFT's own defaults cover attention only).
ARCHITECTURE_TARGETS: dict[str, list[str]] = {
    **{arch: _ALL_PROJECTIONS for arch in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text")},
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


class LoraTrainingConfig(BaseModel):
    """Everything that decides how one adapter is trained; stored in its manifest."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # The adapter
    r: int = Field(16, gt=0)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["auto"] | list[str] = "auto"
    use_rslora: bool = True
    use_dora: bool = False
    # Optimisation
    learning_rate: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    loraplus_lr_ratio: float | None = Field(None, gt=0)
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "sgd", "adafactor"] = "adamw_torch"
    lr_scheduler_type: Literal["cosine", "linear", "constant_with_warmup", "cosine_with_min_lr"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    # How long
    max_steps: int | None = Field(None, gt=0)
    num_epochs: float = Field(3.0, gt=0)
    # Batches
    per_device_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    # group_by_length: padded batches of similar lengths; packing: a batch's examples packed into rows as
    # wide as its longest; fixed_packing: all examples packed once into rows of max_seq_length tokens, so
    # every batch (per_device_batch_size rows) has one shape
    batching: Literal["group_by_length", "packing", "fixed_packing"] = "group_by_length"
    max_seq_length: int = Field(2048, gt=0)
    # A device batch's rows times its widest row at most this many tokens: more rows become more gradient
    # accumulation steps, the same examples in each optimizer step. auto: 2048 on a CPU, where batches
    # that small trained faster and in a fraction of the memory (bench/cpu_train_precision.py); no cap on a GPU.
    max_batch_tokens: Literal["auto"] | Annotated[int, Field(gt=0)] | None = "auto"
    # group_by_length batches whose examples begin alike compute the shared tokens once (adapters/kernels/
    # shared_prefix.py). auto: on a CPU, where a step's time follows its tokens; GPU steps are not measured with it.
    share_prefix: Literal["auto"] | bool = "auto"
    # Hardware
    bf16: Literal["auto"] | bool = "auto"  # auto: on a CUDA GPU, and in a LoRA step of a bf16 CPU run (lora_step.run_precision)
    gradient_checkpointing: bool = False
    fused_lora: bool = True  # plain LoRA layers train through adapters/kernels/fused_lora.py (same maths, fewer passes)
    torch_compile: bool = False  # CUDA: each decoder layer compiled (adapters/kernels/compiled_layers.py); use fixed_packing
    qlora_4bit: bool = False
    # Evaluation, checkpoints, logging
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    save_steps: int = Field(100, gt=0)
    save_total_limit: int = Field(2, gt=0)
    early_stopping_patience: int | None = Field(3, gt=0)
    logging_steps: int = Field(10, gt=0)
    seed: int = 0

    @field_validator("target_modules")
    @classmethod
    def _nonempty_targets(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one module name, or 'auto'")
        return value

    @model_validator(mode="after")
    def _loraplus_needs_adamw(self) -> LoraTrainingConfig:
        if self.loraplus_lr_ratio is not None and not self.optimizer.startswith("adamw"):
            raise ValueError(f"loraplus_lr_ratio builds an AdamW optimizer; it cannot be combined with "
                             f"optimizer={self.optimizer!r}")
        return self

    @model_validator(mode="after")
    def _sharing_needs_length_groups(self) -> LoraTrainingConfig:
        if self.share_prefix is True and self.batching != "group_by_length":
            raise ValueError(f"share_prefix: true lays out group_by_length batches; it cannot be combined with "
                             f"batching={self.batching!r}")
        return self

    def shares_prefix(self, cuda_available: bool) -> bool:
        """share_prefix 'auto' means on for length-grouped batches without a CUDA GPU."""
        if self.share_prefix == "auto":
            return self.batching == "group_by_length" and not cuda_available
        return self.share_prefix

    def use_bf16(self, cuda_available: bool) -> bool:
        """bf16 'auto' means on exactly when training runs on a CUDA GPU."""
        return cuda_available if self.bf16 == "auto" else bool(self.bf16)

    def micro_batches(self, width: int, cuda_available: bool, shared: int = 0) -> LoraTrainingConfig:
        """These settings with a device batch of rows `width` tokens wide (the widest a row can be) kept
        within `max_batch_tokens`: the most rows under the cap that divide the examples of an optimizer
        step, the rest of them accumulated. That product is also what the length-grouped sampler
        groups by, so each step trains on the same examples. `shared` leading tokens that every example
        has in common count once in a batch (share_prefix)."""
        cap = (None if cuda_available else CPU_BATCH_TOKENS) if self.max_batch_tokens == "auto" else self.max_batch_tokens
        per_step = self.per_device_batch_size * self.gradient_accumulation_steps

        def tokens(rows: int) -> int:
            return shared + rows * (width - shared)

        if cap is None or tokens(self.per_device_batch_size) <= cap:
            return self
        rows = max(d for d in range(1, self.per_device_batch_size + 1) if per_step % d == 0 and (d == 1 or tokens(d) <= cap))
        return self.with_overrides(per_device_batch_size=rows, gradient_accumulation_steps=per_step // rows)

    def with_overrides(self, **overrides: Any) -> LoraTrainingConfig:
        """A copy with some keys changed, validated like the file (None values are ignored)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return LoraTrainingConfig.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise AxError(f"Invalid LoRA setting: {_describe(exc)}") from None


def _describe(exc: ValidationError, prefix: str = "") -> str:
    """Name each bad key and the value that was given for it (or the section, for a clash between keys)."""
    parts = []
    for error in exc.errors():
        if error["loc"]:
            key = prefix + ".".join(str(p) for p in error["loc"])
            parts.append(f"{key} = {error['input']!r}: {error['msg']}")
        else:
            parts.append(f"{prefix.rstrip('.') or 'settings'}: {error['msg']}")
    return "; ".join(parts)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise AxError(f"Cannot read LoRA config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AxError(f"LoRA config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise AxError(f"LoRA config {path} must be a mapping with a 'lora:' section, got {type(data).__name__}")
    unknown = set(data) - {"lora", "domains"}
    if unknown:
        raise AxError(f"LoRA config {path}: unknown top-level key(s) {sorted(unknown)}; expected 'lora' and 'domains'")
    for section in ("lora", "domains"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise AxError(f"LoRA config {path}: '{section}' must be a mapping, got {data[section]!r}")
    return data


def load_config(path: str | Path | None = None, domain: str | None = None) -> LoraTrainingConfig:
    """The settings for `domain` (or the defaults): the file's `lora:` section plus that domain's overrides."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    data = _read_yaml(path)
    base = data.get("lora") or {}
    overrides = ((data.get("domains") or {}).get(domain) or {}) if domain else {}
    if not isinstance(overrides, dict):
        raise AxError(f"LoRA config {path}: domains.{domain} must be a mapping, got {overrides!r}")
    try:
        config = LoraTrainingConfig.model_validate(base)
    except ValidationError as exc:
        raise AxError(f"Invalid LoRA config {path}: {_describe(exc, 'lora.')}") from None
    try:
        return LoraTrainingConfig.model_validate({**config.model_dump(), **overrides})
    except ValidationError as exc:
        raise AxError(f"Invalid LoRA config {path}: {_describe(exc, f'domains.{domain}.')}") from None
