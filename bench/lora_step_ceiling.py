"""How fast can a LoRA step of the 1.1B random Llama go on this GPU, outside the Trainer? A ceiling for MFU.

Hand-written steps (bf16 autocast, fused AdamW, fixed [B, T] batches of random tokens, PEFT LoRA
with ax's default targets) rather than ax's Trainer path, to separate what the hardware and PEFT
allow from what ax's path achieves (`bench/train_throughput.py --cuda`). MFU counts 4 N FLOPs per
token as train_throughput.py does; `attn_extra` is what causal attention would add.

    python bench/lora_step_ceiling.py bench "p,8,1024;m,32,1024,default,0,1"

Specs, ';'-separated: `p,B,T` prints a torch.profiler table of eager steps; `m,B,T,COMPILE,CKPT[,BF16]`
measures steps/s, COMPILE '-' (eager) or a torch.compile mode ('default'), CKPT 1 for gradient
checkpointing, BF16 1 to hold the adapter weights in bf16 instead of PEFT's fp32. Results also go
to $OUT/mfu.json (default /tmp).
"""
import sys, time, json, os
sys.path.insert(0, sys.argv[1])  # the bench folder, for train_throughput's model and config
import torch
import train_throughput as tt
from ax.adapters.peft_model import attach_lora
results = []
class A: cuda = True; model = "tiny"
load = tt.loader(A())

def step_fn(model, opt, ids):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids, use_cache=False)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)

def measure(B, T, compile_mode=None, ckpt=False, steps=8, adapter_bf16=False):
    base = load()
    n = tt.matmul_params(base.model)
    cfg = tt.bench_config(B, "packing", T, ckpt)
    model = attach_lora(base.model, cfg)
    if adapter_bf16:
        for p in model.parameters():
            if p.requires_grad: p.data = p.data.to(torch.bfloat16)
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False}); model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    fwd = torch.compile(model, mode=compile_mode if compile_mode != "default" else None) if compile_mode else model
    ids = torch.randint(0, 32000, (B, T), device="cuda")
    try:
        for _ in range(3): step_fn(fwd, opt, ids)
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(steps): step_fn(fwd, opt, ids)
        torch.cuda.synchronize(); dt = (time.perf_counter() - t) / steps
    except Exception as e:
        print("FAIL", B, T, compile_mode, ckpt, repr(e)[:300], flush=True); return
    tps = B * T / dt
    mfu = tps * 4 * n / 989e12
    attn = tps * 6 * 22 * 2048 * T / 2 / 989e12  # causal attention fwd+bwd (activations only for frozen: QK and AV grads)
    r = dict(B=B, T=T, compile=compile_mode, ckpt=ckpt, adapter_bf16=adapter_bf16, step_s=round(dt, 4), tok_s=round(tps), mfu_4N=round(mfu, 4), attn_extra=round(attn, 4),
             mem_gb=round(torch.cuda.max_memory_allocated() / 1e9, 1))
    print(r, flush=True); results.append(r)
    torch.cuda.reset_peak_memory_stats()
    del model, opt, fwd, base; torch.cuda.empty_cache()

def profile(B, T):
    base = load(); model = attach_lora(base.model, tt.bench_config(B, "packing", T)); model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    ids = torch.randint(0, 32000, (B, T), device="cuda")
    for _ in range(3): step_fn(model, opt, ids)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as p:
        for _ in range(3): step_fn(model, opt, ids)
        torch.cuda.synchronize()
    print(p.key_averages().table(sort_by="cuda_time_total", row_limit=22), flush=True)
    del model, opt, base; torch.cuda.empty_cache()

for spec in sys.argv[2].split(";"):
    kind, *args = spec.split(",")
    if kind == "p": profile(int(args[0]), int(args[1]))
    else: measure(int(args[0]), int(args[1]), None if args[2] == "-" else args[2], args[3] == "1", adapter_bf16=len(args) > 4 and args[4] == "1")
json.dump(results, open(os.path.join(os.environ.get("OUT", "/tmp"), "mfu.json"), "w"), indent=1)
