"""Training one LoRA adapter with transformers' Trainer, so accelerate and torchrun scale it unchanged.

What ax adds to a plain Trainer run: completion-only loss on the client's exact text (dataset.py),
with logits computed at the completion positions only (completion_loss.py), batches padded to
their longest or packed (collate.py) with length-grouped sampling, packed rows attending through
flash attention's variable-length kernel on a GPU (varlen_attention.py), eval loss on a dev split
with early stopping, checkpoints that `resume=True` continues from after a crash, LoRA layers that
train in fewer passes (fused_lora.py) or compiled decoder layers (compiled_layers.py) whose LoRA
layers share their input's products and add them inside the base GEMM (shared_lora_input.py), LoRA+
when asked, and a count of real (non-padding) tokens for an honest tokens/s, over the whole run and
after the first steps (which compile and warm up).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from pydantic import BaseModel
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ax.adapter_store import AdapterManifest, save_adapter
from ax.adapters.collate import REAL_TOKENS_KEY, make_collator, pack_dataset
from ax.adapters.completion_loss import LOSS_POSITIONS_KEY, completion_loss, logits_at
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import TrainingPair, data_hash, encode_pairs, split_dev
from ax.adapters.kernels.compiled_layers import compiled_layers
from ax.adapters.kernels.fused_lora import fused_lora
from ax.adapters.kernels.shared_lora_input import shared_lora_input
from ax.adapters.kernels.shared_prefix import shared_length, shared_prefix_attention
from ax.adapters.kernels.shared_prefix import supported as sharing_supported
from ax.adapters.kernels.varlen_attention import varlen_attention, varlen_supported
from ax.adapters.peft_model import attach_lora, resolve_target_modules
from ax.errors import AxError
from ax.model import LoadedModel, atomic_write_text
from ax.names import check_name

log = logging.getLogger(__name__)
RUN_FILE = "ax_run.json"  # what a run directory's checkpoints were trained on, checked before resuming
WARMUP_STEPS = 3  # steps left out of the steady throughput: compilation, allocator and kernel warm-up


class TrainMetrics(BaseModel):
    """What one training run did; stored in the adapter's manifest."""

    train_loss: float
    eval_loss: float | None = None
    # Mean loss of the first and of the last logging window: whether training moved the loss at all
    first_loss: float | None = None
    last_loss: float | None = None
    steps: int
    resumed_from_step: int | None = None
    train_examples: int
    dev_examples: int
    dropped_examples: int
    train_tokens: int  # real tokens of the training examples (one epoch)
    tokens_seen: int  # real tokens processed in this session (padding excluded)
    tokens_per_second: float
    # After the first WARMUP_STEPS steps of this session (None when too few steps followed them)
    steady_tokens_per_second: float | None = None
    wall_time_s: float


@dataclass
class TrainResult:
    """The trained PeftModel (best checkpoint when a dev set was used), its metrics and effective settings."""

    model: Any
    metrics: TrainMetrics
    config: LoraTrainingConfig  # target_modules resolved to the module names actually wrapped
    data_hash: str
    main_process: bool  # False on the other ranks of a distributed run: only the main one saves


class AdapterTrainer(Trainer):
    """A Trainer that computes logits where the loss needs them only (completion_loss.py) and counts
    real training tokens (the collator's `num_real_tokens`) for tokens/s."""

    def __init__(self, *args: Any, **kwargs: Any):
        # The Trainer's own hook for a custom loss keeps its scaling for gradient accumulation and
        # for tokens averaged across devices.
        super().__init__(*args, compute_loss_func=self._completion_loss, **kwargs)
        self.real_tokens = 0
        self._positions: torch.Tensor | None = None

    def compute_loss(self, model, inputs, *args, **kwargs):
        count = inputs.pop(REAL_TOKENS_KEY)
        if model.training:
            self.real_tokens += count
        self._positions = inputs.pop(LOSS_POSITIONS_KEY)
        with logits_at(self.accelerator.unwrap_model(model), self._positions):
            return super().compute_loss(model, inputs, *args, **kwargs)

    def _completion_loss(self, outputs, labels, num_items_in_batch=None):
        return completion_loss(outputs.logits, labels, self._positions, num_items_in_batch)


class SteadyThroughput(TrainerCallback):
    """This process's real tokens per second over the steps after the first WARMUP_STEPS of a session.

    The device is synchronized at both ends (twice a run), so queued GPU work is counted where it
    ran; checkpoints and evaluations in between are counted too.
    """

    def __init__(self, trainer: AdapterTrainer):
        self.trainer = trainer
        self.steps = 0
        self.start: tuple[float, int] | None = None
        self.tokens_per_second: float | None = None

    def _mark(self) -> tuple[float, int]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter(), self.trainer.real_tokens

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        if self.steps == WARMUP_STEPS:
            self.start = self._mark()

    def on_train_end(self, args, state, control, **kwargs):
        if self.start is not None and self.steps > WARMUP_STEPS + 1:
            end = self._mark()
            self.tokens_per_second = (end[1] - self.start[1]) / (end[0] - self.start[0])


def _checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Recent transformers releases call it activation checkpointing, 5.17 still gradient checkpointing
    (and refuses the new name)."""
    names = {f.name for f in fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}}


def training_arguments(config: LoraTrainingConfig, run_dir: Path, *, has_dev: bool) -> TrainingArguments:
    """TrainingArguments for these settings: checkpoints every `save_steps`, evaluated then when there is a dev set."""
    cuda = torch.cuda.is_available()
    warmup = config.warmup_steps if config.warmup_steps is not None else config.warmup_ratio
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        optim=config.optimizer,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=warmup,
        max_grad_norm=config.max_grad_norm,
        max_steps=config.max_steps or -1,
        num_train_epochs=config.num_epochs,
        train_sampling_strategy="group_by_length" if config.batching == "group_by_length" else "random",
        bf16=config.use_bf16(cuda),
        # Without a GPU, accelerate treats torchrun's processes as one distributed (gloo) job only when told
        # it is on the CPU; otherwise every process trains alone on the whole data.
        use_cpu=not cuda,
        **_checkpointing_arguments(config.gradient_checkpointing),
        dataloader_pin_memory=cuda,
        # Batches are copied to the GPU while it runs the step before; a blocking copy waits for
        # that step to finish first, leaving the GPU idle until the next forward is queued.
        accelerator_config={"non_blocking": cuda},
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_dev else "no",
        eval_steps=config.save_steps,
        load_best_model_at_end=has_dev,
        metric_for_best_model="eval_loss" if has_dev else None,
        greater_is_better=False if has_dev else None,
        logging_steps=config.logging_steps,
        # The filter reads every step's loss on the host, a device sync that leaves the GPU idle
        # while the next step is queued; a NaN loss then shows in the log instead of being hidden.
        logging_nan_inf_filter=False,
        seed=config.seed,
        data_seed=config.seed,
        # The collator's batches are plain dicts; PeftModel's forward hides the label argument's name.
        remove_unused_columns=False,
        label_names=["labels"],
        # Packed rows rely on position_ids with no KV cache (the default); keep it explicit.
        use_cache=False,
        report_to="none",
    )


def attention_without_cudnn() -> Any:
    """SDPA kernels for training batches whose length changes from step to step.

    cuDNN attention (PyTorch's first choice on Hopper) builds an execution plan for every new
    shape, milliseconds of CPU per layer call; with length-grouped or packed batches nearly every
    step is a new shape, which leaves the GPU idle most of each step. Flash and memory-efficient
    attention need no plan.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def _autocast_owns_dtypes(model: Any, bf16: bool) -> Any:
    """Under bf16 autocast, stop PEFT casting each activation to its fp32 adapter weights' dtype.

    autocast casts it straight back to bf16 for the matmul, so the round trip bought nothing but
    copies and casts, a large share of a LoRA step's GPU time (torch.profiler; the MFU before and
    after is in the README's Measured section, `python bench/train_throughput.py --cuda`). The
    adapter weights stay fp32, so optimizer updates keep full precision.
    """
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model, active=bf16)


def loraplus_optimizer(model: Any, config: LoraTrainingConfig) -> torch.optim.Optimizer | None:
    """LoRA+: AdamW with the B matrices at `loraplus_lr_ratio` times the learning rate (None: the Trainer's own)."""
    if config.loraplus_lr_ratio is None:
        return None
    from peft.optimizers import create_loraplus_optimizer

    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=config.learning_rate,
                                     loraplus_lr_ratio=config.loraplus_lr_ratio, weight_decay=config.weight_decay)


def _prepare_run_dir(run_dir: Path, identity: dict[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from, after checking it was trained on the same data and settings.

    Without `resume`, checkpoints of an earlier run are removed so that they cannot mix with the new one.
    """
    run_file = run_dir / RUN_FILE
    last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    if resume and last:
        try:
            saved = json.loads(run_file.read_text())
        except (OSError, ValueError):
            saved = None
        if saved != identity:
            raise AxError(f"Cannot resume from {last}: it was trained on other data or settings "
                          f"({run_file} differs). Start without resume to train afresh.")
        return last
    if resume:
        log.info("No checkpoint in %s: training from the start.", run_dir)
    if run_dir.is_dir():
        for old in run_dir.glob("checkpoint-*"):
            shutil.rmtree(old)
    atomic_write_text(run_file, json.dumps(identity, sort_keys=True))
    return None


def train_adapter(base: LoadedModel, train_pairs: list[TrainingPair], config: LoraTrainingConfig, *,
                  run_dir: str | Path, dev_pairs: list[TrainingPair] | None = None,
                  resume: bool = False, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train a LoRA adapter on `base` (whose model it wraps in place) and return it with its metrics.

    Without `dev_pairs`, `config.dev_fraction` of the training pairs is held out for eval loss and
    early stopping. Checkpoints go to `run_dir`; with `resume=True` training continues from the last.
    `callbacks` are the Trainer's, added to ax's own.
    """
    if config.torch_compile and not torch.cuda.is_available():
        raise AxError("torch_compile: true compiles the decoder layers for a CUDA GPU; none is available. "
                      "Set torch_compile: false to train on this machine.")
    if dev_pairs is None:
        train_pairs, dev_pairs = split_dev(train_pairs, config.dev_fraction, config.seed)
    if not train_pairs:
        raise AxError("No training examples were given.")
    tokenizer = base.tokenizer
    train_data = encode_pairs(tokenizer, train_pairs, config.max_seq_length)
    dev_data = encode_pairs(tokenizer, dev_pairs, config.max_seq_length)
    if not train_data.examples:
        raise AxError(f"All {len(train_pairs)} training examples are longer than max_seq_length="
                      f"{config.max_seq_length} tokens; raise it in the LoRA config.")
    has_dev = bool(dev_data.examples)
    config = config.with_overrides(target_modules=resolve_target_modules(base.model, config))
    run_dir = Path(run_dir)
    fingerprint = data_hash(train_pairs + dev_pairs)
    identity = {"data_hash": fingerprint, "base": base.fingerprint, "config": config.model_dump(mode="json")}
    # Under torchrun, rank 0 cleans the run directory first (cpu=True: see use_cpu in training_arguments).
    with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
        checkpoint = _prepare_run_dir(run_dir, identity, resume)

    torch.manual_seed(config.seed)
    model = attach_lora(base.model, config)
    share = config.shares_prefix(torch.cuda.is_available()) and sharing_supported(base.model)
    batches = _micro_batches(config, train_data.examples + dev_data.examples, share)
    args = training_arguments(batches, run_dir, has_dev=has_dev)
    varlen = config.batching != "group_by_length" and varlen_supported(
        base.model, torch.bfloat16 if args.bf16 else base.model.dtype)
    collator = make_collator(config.batching, tokenizer.pad_token_id, 8 if torch.cuda.is_available() else 1,
                             boundaries=varlen, rows_per_batch=batches.per_device_batch_size,
                             max_seq_length=config.max_seq_length, share_prefix=share)
    train_set, dev_set = train_data.examples, dev_data.examples
    if config.batching == "fixed_packing":
        train_set, dev_set = pack_dataset(train_set, collator.width), pack_dataset(dev_set, collator.width)
    stopping = [EarlyStoppingCallback(config.early_stopping_patience)] if has_dev and config.early_stopping_patience else []
    trainer = AdapterTrainer(
        model=model, args=args, train_dataset=train_set,
        eval_dataset=dev_set if has_dev else None, data_collator=collator,
        optimizers=(loraplus_optimizer(model, config), None), callbacks=[*stopping, *callbacks],
    )
    throughput = SteadyThroughput(trainer)
    trainer.add_callback(throughput)
    started = time.perf_counter()
    # Compiled layers fuse LoRA's passes themselves (and faster than fused_lora.py inside a graph);
    # what they cannot fuse is the reading of one input by several LoRA layers, nor a LoRA update added
    # inside its base layer's GEMM (shared_lora_input.py does both).
    with (attention_without_cudnn(), _autocast_owns_dtypes(model, args.bf16),
          fused_lora(model, config.fused_lora and not config.torch_compile),
          shared_lora_input(model, config.torch_compile),
          compiled_layers(model, config.torch_compile), varlen_attention(base.model, varlen),
          shared_prefix_attention(base.model, share)):
        output = trainer.train(resume_from_checkpoint=checkpoint)
        wall = time.perf_counter() - started
        eval_loss = trainer.evaluate()["eval_loss"] if has_dev else None
    tokens_seen = int(trainer.accelerator.gather(torch.tensor(trainer.real_tokens, device=args.device)).sum())
    runtime = output.metrics.get("train_runtime") or wall
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics = TrainMetrics(
        train_loss=output.training_loss, eval_loss=eval_loss, steps=output.global_step,
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        resumed_from_step=int(Path(checkpoint).name.split("-")[-1]) if checkpoint else None,
        train_examples=len(train_data.examples), dev_examples=len(dev_data.examples),
        dropped_examples=train_data.dropped + dev_data.dropped, train_tokens=train_data.tokens,
        tokens_seen=tokens_seen, tokens_per_second=tokens_seen / runtime if runtime else 0.0,
        steady_tokens_per_second=throughput.tokens_per_second, wall_time_s=wall,
    )
    trainer.model.eval()
    _return_freed_memory()
    return TrainResult(trainer.model, metrics, config, fingerprint, trainer.is_world_process_zero())


def _micro_batches(config: LoraTrainingConfig, examples: list[dict[str, list[int]]], share: bool) -> LoraTrainingConfig:
    """`config` with its device batches within `max_batch_tokens` for these examples (rows of
    fixed_packing are max_seq_length wide; other rows at most the longest example; with `share`, the
    tokens every example begins with counted once)."""
    width = config.max_seq_length if config.batching == "fixed_packing" else max(len(e["input_ids"]) for e in examples)
    batches = config.micro_batches(width, torch.cuda.is_available(), shared_length(examples) if share else 0)
    if batches is not config:
        log.info("Device batches of %d rows and %d accumulation steps instead of %d and %d: rows up to %d tokens "
                 "(max_batch_tokens %s).", batches.per_device_batch_size, batches.gradient_accumulation_steps,
                 config.per_device_batch_size, config.gradient_accumulation_steps, width, config.max_batch_tokens)
    return batches


def _return_freed_memory() -> None:
    """Hand the heap pages training freed back to the system. glibc keeps them for reuse: after a CPU
    run, whose activations reach gigabytes, the process would hold them while it goes on answering,
    and a later stage's training would add its own (README, Measured: `bench/cpu_train_precision.py`)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def train_and_save(base: LoadedModel, train_pairs: list[TrainingPair], config: LoraTrainingConfig, *,
                   domain: str, target: str | Path, dev_pairs: list[TrainingPair] | None = None,
                   resume: bool = False) -> tuple[TrainResult, AdapterManifest | None]:
    """Train, then store the adapter at `target` with its manifest (on the main process only).

    Checkpoints live in `<target's folder>/.runs/<name>` (hidden from the store's listing) and
    are removed once the adapter is saved.
    """
    target = Path(target)
    check_name("adapter", target.name)
    run_dir = target.parent / ".runs" / target.name
    result = train_adapter(base, train_pairs, config, run_dir=run_dir, dev_pairs=dev_pairs, resume=resume)
    if not result.main_process:
        return result, None
    manifest = save_adapter(
        result.model, target, domain=domain, base_name=base.name, base_fingerprint=base.fingerprint,
        training_data_hash=result.data_hash, config=result.config.model_dump(mode="json"),
        metrics=result.metrics.model_dump(),
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return result, manifest
