"""Packed-row attention kernels: PyTorch's `varlen_attn` (FlashAttention 2) against FlashAttention 4.

Needs a Hopper or Blackwell GPU and the `flash-attn-4` package (`pip install -e '.[fa4]'`). Two parts:

  gradients   for each head dim, FA4's output and query, key and value gradients against PyTorch's,
              as relative errors (a few examples of 5-300 tokens, grouped heads): ax uses FA4 only
              at the head dims where they agree (adapters/kernels/varlen_attention.py)
  timing      one layer's attention, forward and forward + backward, at the shapes of
              `bench/train_throughput.py --cuda --batch-size 8` (8 rows of 3,064 tokens packed with
              examples of log-normal lengths, 32 query and 4 key heads of 64)

    python bench/varlen_kernels.py
"""

from __future__ import annotations

import itertools
import random

import torch
from torch.nn.attention.varlen import varlen_attn

from ax.adapters.kernels import varlen_attention

HEAD_DIMS = (8, 16, 24, 32, 48, 64, 80, 96, 128, 192, 256)


def _boundaries(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device="cuda")


def _inputs(tokens: int, heads: int, kv_heads: int, dim: int) -> list[torch.Tensor]:
    shapes = ((tokens, heads, dim), (tokens, kv_heads, dim), (tokens, kv_heads, dim))
    return [torch.randn(s, device="cuda", dtype=torch.bfloat16, requires_grad=True) for s in shapes]


def _kernels(cu: torch.Tensor, longest: int, dim: int) -> dict:
    scale = dim ** -0.5
    return {
        "torch": lambda q, k, v: varlen_attn(q, k, v, cu, cu, longest, longest, scale=scale, window_size=(-1, 0)),
        "fa4": lambda q, k, v: varlen_attention._fa4_forward(q, k, v, cu, longest, scale, -1)[0],
    }


def gradients() -> None:
    lengths = [40, 9, 23, 31, 5, 17, 67, 300]
    cu = _boundaries(lengths)
    print("head dim   relative error of FA4 against torch: out, dq, dk, dv")
    for dim in HEAD_DIMS:
        results = {}
        for name, kernel in _kernels(cu, max(lengths), dim).items():
            torch.manual_seed(0)
            q, k, v = _inputs(sum(lengths), 8, 2, dim)
            out = kernel(q, k, v)
            out.backward(torch.linspace(-1, 1, dim, device="cuda").expand_as(out))
            results[name] = [t.float() for t in (out, q.grad, k.grad, v.grad)]
        errors = [((a - b).norm() / a.norm()).item() for a, b in zip(results["torch"], results["fa4"])]
        print(f"{dim:8d}   " + "  ".join(f"{e:.4f}" for e in errors))


def timing(repeats: int = 20) -> None:
    random.seed(0)
    width, rows = 3064, 8
    lengths = []
    for _ in range(rows):
        left = width
        while left > 0:
            n = min(left, max(44, int(random.lognormvariate(5.44, 0.9))))
            lengths.append(n)
            left -= n
    cu = _boundaries(lengths)
    q, k, v = _inputs(sum(lengths), 32, 4, 64)
    grad = torch.randn_like(q)
    print(f"{len(lengths)} examples in {rows} rows of {width}, longest {max(lengths)}; ms per layer:")
    for name, kernel in _kernels(cu, max(lengths), 64).items():
        for backward in (False, True):
            def step():
                out = kernel(q, k, v)
                if backward:
                    out.backward(grad)
            for _ in range(3):  # FA4 compiles its kernels on the first call
                step()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                step()
            end.record()
            torch.cuda.synchronize()
            print(f"  {name:5s} {'forward + backward' if backward else 'forward':18s} "
                  f"{start.elapsed_time(end) / repeats:.3f}")


if __name__ == "__main__":
    if varlen_attention._fa4_interface() is None or not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU and flash-attn-4 (pip install -e '.[fa4]')")
    gradients()
    timing()
