"""LoRA training throughput: ax's paths vs. TRL's packing SFTTrainer and vs. a plain PEFT + Trainer run.

Same model, same LoRA settings, same examples (a mix of short and long chats, lengths drawn
log-normally as real prompts are), same batch size, one epoch each, one process.

  ax (group_by_length)   length-grouped batches, each padded to its own longest example
  ax (packing)           several examples per row, attention kept apart by position_ids
  ax (fixed_packing)     all examples packed once into rows of the longest example's width: one
                         batch shape every step (with --torch-compile: decoder layers compiled)
  TRL SFTTrainer         what a competent user runs instead: TRL's SFTTrainer on the same prompt /
                         completion pairs with packing (best-fit decreasing into rows of the longest
                         example's width, padding-free: position_ids keep examples apart),
                         completion-only loss, the same LoRA settings and optimizer; the baseline of
                         the printed ratios (`--model smollm2`: the embedded model itself)
  padded Trainer         random batches, `padding="max_length"` to the longest example of the
                         data (the smallest fixed length that truncates nothing), default collator

Reported: real (non-padding) tokens per second of each, and ax / baseline; for ax's paths on a
GPU also after their first 3 steps ("steady", which leaves compilation and warm-up out); on CPU also per
second of process CPU time, which a machine shared with other jobs disturbs less than wall time
(on a crowded 2-core machine run with OMP_NUM_THREADS=1: spinning OpenMP threads swamp both).
transformers' length grouping sorts within mega-batches of min(n // (4 * batch), 50) batches, so
small example counts (e.g. the 32 of --model smollm2) group weakly; packing does not depend on n.

    pip install -e '.[bench]'                             # TRL, the baseline (or pass --no-baseline)
    python bench/train_throughput.py 2>/dev/null         # tiny random model (stderr: Trainer progress bars)
    python bench/train_throughput.py --model smollm2     # SmolLM2-135M (converted from GGUF on first use)
    python bench/train_throughput.py --cuda              # ~1.1B random-init Llama in bf16, with MFU
    python bench/train_throughput.py --cuda --nproc 2    # the same under torchrun, one process per GPU (DDP)

With --nproc N the bench starts itself under `torchrun --nproc_per_node N`: every path trains with N
processes through the Trainer (DDP), on N times the examples, so each GPU trains as many steps of
the same per-device batch as one GPU alone (weak scaling); tokens/s are all GPUs' together, MFU
and "steady" are per GPU.

MFU counts 4 N FLOPs per trained token (LoRA: forward 2N, backward through activations 2N, no
gradients for frozen weights), N = the weights used in matmuls per token (all but the input
embedding), attention-score FLOPs left out, against 989 TFLOP/s (H100 SXM, dense bf16). Padding
tokens are computed but not counted. ax's paths compute the output head's logits only at the positions
that predict a completion token (adapters/completion_loss.py); "FLOPs executed" counts the head
there only, the FLOPs those paths actually run. "with attention scores" adds causal attention's
matmuls (12 d FLOPs per query-key pair of each example, a layer), which every path runs.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import IGNORE_INDEX, TrainingPair, encode_pairs
from ax.adapters.peft_model import attach_lora
from ax.adapters.train import train_adapter
from ax.model import LoadedModel, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny_model: the tests' random-init model

H100_BF16_PEAK = 989e12
BASELINE = "TRL SFTTrainer (packing)"
PADDED = "padded Trainer (max_length)"
LLAMA_1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096)  # TinyLlama-1.1B shapes
WORDS = ("the clause binds the tenant and the landlord while revenue grew and costs fell as the patient "
         "reports chest pain and the customer wants a refund for the order").split()


def make_pairs(tokenizer, n: int, median_tokens: int, seed: int = 0) -> list[TrainingPair]:
    """Chats whose prompt lengths are log-normal around `median_tokens` (a long tail of long ones)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = max(8, int(rng.lognormvariate(math.log(median_tokens), 0.8)))
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(words))}],
            tokenize=False, add_generation_prompt=True)
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))
        pairs.append(TrainingPair(prompt=prompt, completion=f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"))
    return pairs


def bench_config(batch_size: int, batching: str, max_length: int, **settings) -> LoraTrainingConfig:
    """One epoch, no dev split, checkpoints or logging; `settings` are other LoraTrainingConfig keys."""
    return LoraTrainingConfig(per_device_batch_size=batch_size, batching=batching, max_seq_length=max_length,
                              num_epochs=1, dev_fraction=0.0, save_steps=1_000_000, logging_steps=1_000_000,
                              lora_dropout=0.0, warmup_ratio=0.0, **settings)


def run_ax(load, pairs, config: LoraTrainingConfig, run_dir: Path, callbacks=()) -> dict:
    base = load()
    cpu = time.process_time()
    m = train_adapter(base, pairs, config, run_dir=run_dir, callbacks=callbacks).metrics
    return {"tokens": m.tokens_seen, "seconds": m.tokens_seen / m.tokens_per_second, "steps": m.steps,
            "cpu_seconds": time.process_time() - cpu, "steady": m.steady_tokens_per_second}


def run_baseline(load, pairs, batch_size: int, max_length: int, run_dir: Path) -> dict:
    """The plain recipe: tokenize prompt + completion padded to max_length, default collator, stock Trainer."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    base = load()
    cpu = time.process_time()
    tok = base.tokenizer
    rows = []
    for pair in pairs:
        enc = tok(pair.prompt + pair.completion + tok.eos_token, padding="max_length", max_length=max_length,
                  truncation=True, add_special_tokens=False)
        enc["labels"] = [i if m else -100 for i, m in zip(enc["input_ids"], enc["attention_mask"])]
        rows.append(dict(enc))
    config = bench_config(batch_size, "group_by_length", max_length)
    model = attach_lora(base.model, config)
    args = TrainingArguments(output_dir=str(run_dir), per_device_train_batch_size=batch_size, num_train_epochs=1,
                             learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                             lr_scheduler_type="cosine", bf16=config.use_bf16(torch.cuda.is_available()),
                             save_strategy="no", logging_steps=1_000_000, report_to="none",
                             dataloader_pin_memory=torch.cuda.is_available(), label_names=["labels"])
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=default_data_collator)
    output = trainer.train()
    real = sum(sum(r["attention_mask"]) for r in rows)
    return {"tokens": real, "seconds": output.metrics["train_runtime"], "steps": output.global_step,
            "cpu_seconds": time.process_time() - cpu}


def run_trl(load, pairs, batch_size: int, max_length: int, run_dir: Path) -> dict:
    """TRL's SFTTrainer: prompt/completion pairs, packing without padding, loss on completions only."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    base = load()
    cpu = time.process_time()
    config = bench_config(batch_size, "packing", max_length)
    model = attach_lora(base.model, config)
    data = Dataset.from_list([{"prompt": p.prompt, "completion": p.completion + base.tokenizer.eos_token}
                              for p in pairs])
    args = SFTConfig(output_dir=str(run_dir), per_device_train_batch_size=batch_size, num_train_epochs=1,
                     learning_rate=config.learning_rate, weight_decay=config.weight_decay, lr_scheduler_type="cosine",
                     bf16=config.use_bf16(torch.cuda.is_available()), save_strategy="no", logging_steps=1_000_000,
                     report_to="none", packing=True, padding_free=True, completion_only_loss=True,
                     max_length=max_length, dataset_kwargs={"add_special_tokens": False},
                     dataloader_pin_memory=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available())
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=base.tokenizer)
    real = sum(len(row["input_ids"]) for row in trainer.train_dataset)
    output = trainer.train()
    return {"tokens": real, "seconds": output.metrics["train_runtime"], "steps": output.global_step,
            "cpu_seconds": time.process_time() - cpu}


KERNEL_KINDS = (("attention", ("sdpa", "cudnn", "flash", "fmha", "attention")),
                ("gemm", ("gemm", "cutlass", "nvjet", "cublas", "xmma", "sm90")),
                ("inductor", ("triton",)))


def print_kernel_times(prof, steps: int) -> None:
    """A torch.profiler run's table, then its GPU kernel time a step by kind of kernel."""
    events = prof.key_averages()
    print(events.table(sort_by="cuda_time_total", row_limit=30), flush=True)
    kinds = dict.fromkeys([kind for kind, _ in KERNEL_KINDS] + ["other"], 0.0)
    for event in events:
        if event.device_type == torch.autograd.DeviceType.CUDA:
            name = event.key.lower()
            kind = next((kind for kind, marks in KERNEL_KINDS if any(m in name for m in marks)), "other")
            kinds[kind] += event.self_device_time_total / steps / 1000
    print(f"kernel ms a step: {sum(kinds.values()):.1f} =", ", ".join(f"{k} {v:.1f}" for k, v in kinds.items()),
          flush=True)


class StepProfile(TrainerCallback):
    """torch.profiler over `count` Trainer steps after the first `start`: its table, kernel and wall time a step."""

    def __init__(self, start: int = 10, count: int = 3):
        self.start, self.count, self.steps = start, count, 0
        self.profiler = self.started = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.steps == self.start:
            torch.cuda.synchronize()
            activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1
        if self.profiler is not None and self.steps == self.start + self.count:
            torch.cuda.synchronize()
            wall = (time.perf_counter() - self.started) / self.count * 1000
            self.profiler.__exit__(None, None, None)
            print_kernel_times(self.profiler, self.count)
            print(f"wall ms a step (profiled): {wall:.1f}", flush=True)
            self.profiler = None


def matmul_params(model) -> int:
    """Weights used in a matmul per token: everything but the input embedding (a tied head counts once)."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    return total - embedding.numel() + (head.numel() if head is embedding else 0)


def loader(args):
    """A function giving a fresh base model each call (LoRA wraps the one it gets in place)."""
    if args.cuda:
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

        from tiny_model import make_tiny_model

        tokenizer = AutoTokenizer.from_pretrained(make_tiny_model(Path(tempfile.mkdtemp()) / "tok"))
        config = LlamaConfig(**LLAMA_1B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)

        def load():
            torch.manual_seed(0)
            with torch.device("cuda"):
                model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                                         attn_implementation=args.attn_implementation)
            return LoadedModel(model, tokenizer, "llama-1.1b-random", "", "random", "cuda", torch.bfloat16)

        return load
    spec = "smollm2" if args.model == "smollm2" else args.model
    if spec == "tiny":
        from tiny_model import make_tiny_model

        spec = str(make_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    # fp32 on a CPU whatever the default: every arm trains with bf16 'auto' (off there), and a bf16 base
    # without autocast is what neither a LoRA step of ax nor a TRL user runs (bench/cpu_train_precision.py)
    return lambda: load_model(spec, dtype=None if torch.cuda.is_available() else "float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (default), 'smollm2', or an HF model directory")
    parser.add_argument("--cuda", action="store_true", help="~1.1B random Llama in bf16 on a CUDA GPU, with MFU")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--median-tokens", type=int, default=None, help="median prompt length in words")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-baseline", action="store_true",
                        help="ax's paths only (the baseline pads every row to the longest: it runs out of GPU memory "
                             "first at large batches)")
    parser.add_argument("--batching", choices=("group_by_length", "packing", "fixed_packing"), action="append",
                        help="ax's batching to run (repeatable; default both)")
    parser.add_argument("--attn-implementation", default="sdpa", help="--cuda: transformers' attention (e.g. flex_attention)")
    parser.add_argument("--no-fused-lora", action="store_true", help="ax's paths train through PEFT's own LoRA layers")
    parser.add_argument("--torch-compile", action="store_true", help="--cuda: ax's paths compile each decoder layer")
    parser.add_argument("--optimizer", default="adamw_torch", help="ax's paths: the config's optimizer")
    parser.add_argument("--profile", action="store_true",
                        help="--cuda: torch.profiler table of steps 11-13 of each of ax's runs")
    parser.add_argument("--nproc", type=int, default=1, help="train under torchrun with this many processes (GPUs)")
    parser.add_argument("--max-batch-tokens", default="auto",
                        help="ax's paths: the config's max_batch_tokens (a number, auto or none; auto caps at 2048 on a CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="ax's paths recompute activations (larger batches fit; MFU does not count the recompute)")
    args = parser.parse_args()
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:  # start again under torchrun, one process per GPU
        words = [a for i, a in enumerate(sys.argv[1:]) if a != "--nproc" and sys.argv[i] != "--nproc"]
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        os.execv(torchrun, [torchrun, "--standalone", f"--nproc_per_node={args.nproc}", sys.argv[0], *words])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    main_process = int(os.environ.get("RANK", "0")) == 0
    if args.cuda and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # models load onto "cuda": this process's GPU
    if args.cuda and not torch.cuda.is_available():
        parser.error("--cuda needs a CUDA GPU")
    if args.profile and not args.cuda:
        parser.error("--profile times GPU kernels: give --cuda")
    small = not args.cuda and args.model == "smollm2"
    examples = (args.examples or (32 if small else 512 if args.cuda else 256)) * world
    median = args.median_tokens or (150 if args.cuda else 60)

    load = loader(args)
    sample = load()
    pairs = make_pairs(sample.tokenizer, examples, median)
    encoded = encode_pairs(sample.tokenizer, pairs, 1 << 20).examples
    lengths = [len(e["input_ids"]) for e in encoded]
    max_length = max(lengths)
    n_matmul = matmul_params(sample.model)
    # ax computes the head's logits only where a completion token is predicted (completion_loss.py)
    predicted = sum(label != IGNORE_INDEX for e in encoded for label in e["labels"][1:]) / sum(lengths)
    ax_flops = 4 * (n_matmul - (1 - predicted) * sample.model.get_output_embeddings().weight.numel())
    # Causal attention scores, a token's share: QK^T and PV forward (4 d per query-key pair), twice that backward
    shape = sample.model.config
    pairs_per_token = sum(n * (n + 1) / 2 for n in lengths) / sum(lengths)
    attention_flops = 12 * shape.hidden_size * shape.num_hidden_layers * pairs_per_token
    del sample
    say = print if main_process else (lambda *_, **__: None)  # the other processes train alongside rank 0
    say(f"model: {'llama-1.1b random, bf16, cuda' if args.cuda else args.model} "
          f"({n_matmul / 1e6:.1f}M matmul params); {examples} examples, tokens min/median/max "
          f"{min(lengths)}/{sorted(lengths)[len(lengths) // 2]}/{max_length}, batch {args.batch_size}, 1 epoch"
          + (f", {world} processes (DDP): tokens/s of all, MFU and steady per GPU" if world > 1 else ""))

    with tempfile.TemporaryDirectory() as work:
        # One step first: kernels and caches warm up.
        run_ax(load, pairs[:2], bench_config(2, "group_by_length", max_length), Path(work) / "warmup")
        results = {} if args.no_baseline else {
            BASELINE: run_trl(load, pairs, args.batch_size, max_length, Path(work) / "trl"),
            PADDED: run_baseline(load, pairs, args.batch_size, max_length, Path(work) / "b")}
        for batching in args.batching or ("group_by_length", "packing"):
            config = bench_config(args.batch_size, batching, max_length,
                                  gradient_checkpointing=args.gradient_checkpointing, fused_lora=not args.no_fused_lora,
                                  torch_compile=args.torch_compile, optimizer=args.optimizer,
                                  max_batch_tokens=None if args.max_batch_tokens == "none" else args.max_batch_tokens)
            results[f"ax ({batching})"] = run_ax(load, pairs, config, Path(work) / batching,
                                                 [StepProfile()] if args.profile else [])
    baseline = results.get(BASELINE)
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        line = f"{name:<30} {r['steps']:>4} steps {r['seconds']:>8.2f} s {rate:>10,.0f} real tokens/s"
        if baseline:
            line += f"  x{rate / (baseline['tokens'] / baseline['seconds']):.2f}"
        if args.cuda:
            line += f"  MFU {rate / world * 4 * n_matmul / H100_BF16_PEAK:.1%}"
            if r.get("steady") and not args.profile:  # the profiled steps' processing falls in its window
                mfu = [r["steady"] * flops / H100_BF16_PEAK for flops in
                       (4 * n_matmul, ax_flops, 4 * n_matmul + attention_flops, ax_flops + attention_flops)]
                line += (f"  | steady {r['steady']:>9,.0f} tokens/s  MFU {mfu[0]:.1%} (FLOPs executed: {mfu[1]:.1%};"
                         f" with attention scores: {mfu[2]:.1%}, executed {mfu[3]:.1%})")
        else:  # process CPU time: steadier than wall time on a shared machine
            cpu_rate = r["tokens"] / r["cpu_seconds"]
            line += f"  | {r['cpu_seconds']:>8.2f} CPU-s {cpu_rate:>8,.0f} tokens/CPU-s"
            if baseline:
                line += f"  x{cpu_rate / (baseline['tokens'] / baseline['cpu_seconds']):.2f}"
        say(line)
    if args.cuda:
        say(f"MFU: 4 x {n_matmul / 1e9:.2f}B FLOPs per token / {H100_BF16_PEAK / 1e12:.0f} TFLOP/s "
              f"(H100 SXM dense bf16), attention scores not counted. FLOPs executed: ax's head runs only at the "
              f"{predicted:.1%} of positions that predict a completion token, {ax_flops / 1e9:.2f}B a token. "
              f"Attention scores: {attention_flops / 1e9:.3f}B a token")


if __name__ == "__main__":
    main()
