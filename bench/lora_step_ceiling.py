"""How fast can a LoRA step of the 1.1B random Llama go on this GPU, outside the Trainer? A ceiling for MFU.

Hand-written steps (bf16 autocast, fused AdamW, fixed [B, T] batches of random tokens, PEFT LoRA
with ax's default targets) rather than ax's Trainer path, to separate what the hardware and PEFT
allow from what ax's path achieves (`bench/train_throughput.py --cuda`). MFU counts 4 N FLOPs per
token as train_throughput.py does; `mfu_4N_attn` adds what causal attention's score and value matmuls
would add (forward and the backward through activations).

    python bench/lora_step_ceiling.py bench "p,8,1024,-,0;m,32,1024,default,0,1;m,32,1024,default,0,0,1"

Specs, ';'-separated: `m,B,T,COMPILE,CKPT[,BF16[,FUSED[,NOCUDNN]]]` measures steps/s, COMPILE '-'
(eager), a torch.compile mode of the whole model ('default'), or 'layers[:MODE]' for each decoder
layer compiled alone, CKPT 1 for gradient checkpointing, BF16 1 to hold the adapter weights in bf16
instead of PEFT's fp32, FUSED 1 to train through ax's fused LoRA layers
(adapters/kernels/fused_lora.py), NOCUDNN 1 to pick SDPA kernels as ax's Trainer path does (flash or
memory-efficient, no cuDNN); `p,...` with the same fields prints a torch.profiler table of such steps
instead. `mfu_4N_attn` adds causal attention's FLOPs to the 4 N count. Results also go to
$OUT/mfu.json (default /tmp).
"""
import contextlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, sys.argv[1])  # the bench folder, for train_throughput's model and config
import train_throughput as tt  # noqa: E402

from ax.adapters.kernels.fused_lora import fused_lora  # noqa: E402
from ax.adapters.peft_model import attach_lora  # noqa: E402
from ax.adapters.train import attention_without_cudnn  # noqa: E402

H100_BF16_PEAK = tt.H100_BF16_PEAK
LAYERS, HIDDEN = tt.LLAMA_1B["num_hidden_layers"], tt.LLAMA_1B["hidden_size"]


class _Cuda:  # the arguments train_throughput.loader reads
    cuda = True
    model = "tiny"
    attn_implementation = "sdpa"


load = tt.loader(_Cuda())
results = []


def lora_model(batch: int, length: int, checkpointing: bool = False):
    base = load()
    model = attach_lora(base.model, tt.bench_config(batch, "packing", length, gradient_checkpointing=checkpointing))
    return base, model


def train_step(model, optimizer, ids) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids, use_cache=False)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def adamw(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)


def measure(batch: int, length: int, compile_mode: str | None = None, checkpointing: bool = False, steps: int = 8,
            adapter_bf16: bool = False, fused: bool = False, no_cudnn: bool = False, profile: bool = False) -> None:
    base, model = lora_model(batch, length, checkpointing)
    n = tt.matmul_params(base.model)
    if adapter_bf16:
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    optimizer = adamw(model)
    ids = torch.randint(0, 32000, (batch, length), device="cuda")
    attention = attention_without_cudnn() if no_cudnn else contextlib.nullcontext()
    try:
        seconds = time_steps(model, base, optimizer, ids, compile_mode, steps, fused, attention, profile)
        if seconds is None:
            return
        tokens_per_s = batch * length / seconds
        # Causal attention per token and layer: 2 d T forward, 4 d T backward.
        attention_flops = 6 * LAYERS * HIDDEN * length
        result = dict(B=batch, T=length, compile=compile_mode, ckpt=checkpointing, adapter_bf16=adapter_bf16,
                      fused=fused, no_cudnn=no_cudnn, step_s=round(seconds, 4), tok_s=round(tokens_per_s),
                      mfu_4N=round(tokens_per_s * 4 * n / H100_BF16_PEAK, 4),
                      mfu_4N_attn=round(tokens_per_s * (4 * n + attention_flops) / H100_BF16_PEAK, 4),
                      mem_gb=round(torch.cuda.max_memory_allocated() / 1e9, 1))
        print(result, flush=True)
        results.append(result)
    finally:  # a profile or a failed shape too: the next spec's memory starts from nothing
        del model, optimizer, base
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()


def time_steps(model, base, optimizer, ids, compile_mode, steps, fused, attention, profile) -> float | None:
    """Seconds a step after warm-up (and compilation), or None after printing a profile or a failure."""
    with fused_lora(model, fused), attention:
        forward = model
        if compile_mode and compile_mode.startswith("layers"):
            # Each decoder layer alone: the causal mask is then made outside the graph, where transformers
            # drops it for SDPA's is_causal (traced whole, it builds the full mask, and attention computes
            # every block, the masked ones too).
            mode = compile_mode.partition(":")[2] or None
            for layer in base.model.model.layers:
                layer.compile(mode=mode)
        elif compile_mode:
            forward = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
        try:
            for _ in range(3):  # warm-up, and compilation when asked
                train_step(forward, optimizer, ids)
            torch.cuda.synchronize()
            if profile:
                print_profile(forward, optimizer, ids)
                return None
            started = time.perf_counter()
            for _ in range(steps):
                train_step(forward, optimizer, ids)
            torch.cuda.synchronize()
            return (time.perf_counter() - started) / steps
        except Exception as exc:  # an out-of-memory shape is a result too
            print("FAIL", tuple(ids.shape), compile_mode, repr(exc)[:300], flush=True)
            return None


def print_profile(forward, optimizer, ids) -> None:
    """The profiler's table of three steps, then their GPU kernel time a step by kind of kernel."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            train_step(forward, optimizer, ids)
        torch.cuda.synchronize()
    tt.print_kernel_times(prof, 3)


for spec in sys.argv[2].split(";"):
    kind, batch, length, compile_mode, ckpt, *flags = spec.split(",") + ["0", "0", "0"]
    measure(int(batch), int(length), None if compile_mode == "-" else compile_mode, ckpt == "1",
            adapter_bf16=flags[0] == "1", fused=flags[1] == "1", no_cudnn=flags[2] == "1",
            profile=kind == "p")
with open(os.path.join(os.environ.get("OUT", "/tmp"), "mfu.json"), "w") as handle:
    json.dump(results, handle, indent=1)
