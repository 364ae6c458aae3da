"""Joining rows' prompts in one forward: each attended alone at its own width, or padded together.

The shape is the one a profile of passage QA answering showed (16 rows joining at once, each
feeding the ~180-350 tokens of question and passage left after the prefix cache's system prompt of
~300-510 tokens). The forward is ax's own (ax/inference/row_attention.py, `forward_rows`):
  exact    the client's grouping: a row fed more than 64 tokens is attended in a call of its own,
           over its own queries and columns
  padded   the grouping before it (the baseline): rows bucketed by count (widest at most twice the
           narrowest), each bucket's rows padded to its widest query count and column count (its
           query heads stacked on their key heads, as narrow buckets are; that grouping ran wide
           buckets through transformers' SDPA on repeated keys instead)
Timed in turns, one of each a repeat (this machine's speed drifts more than they differ); median.

    python bench/row_attention.py                      # bf16 weights, as the passage QA timing runs
    python bench/row_attention.py --dtype float32
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from unittest import mock

import torch

from ax.inference import row_attention
from ax.inference.kv_cache import Rooms
from ax.model import load_model


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    loaded = load_model(args.model, dtype=args.dtype)
    model = loaded.model
    rng = random.Random(0)
    lengths = [rng.randint(300, 510) for _ in range(args.rows)]
    fed = [[rng.randrange(1000, 20000) for _ in range(rng.randint(180, 350))] for _ in range(args.rows)]
    rooms = Rooms()  # the prefixes' states are zeros: attention costs the same whatever they hold

    def forward() -> float:
        started = time.perf_counter()
        row_attention.forward_rows(model, rooms, list(range(args.rows)), lengths, fed, [len(fed[0]) - 1])
        return time.perf_counter() - started

    def padded() -> float:
        with mock.patch.object(row_attention, "_STACKED_WIDTH", 10**9):
            return forward()

    forward(), padded()  # warm-up: the rooms are made, kernels picked
    exact, baseline = (statistics.median(times) for times in zip(*((forward(), padded()) for _ in range(args.repeats))))
    print(f"model={loaded.name} dtype={args.dtype} torch_threads={torch.get_num_threads()}: {args.rows} joining rows "
          f"fed {sum(map(len, fed))} tokens ({min(map(len, fed))}-{max(map(len, fed))} each) after "
          f"{min(lengths)}-{max(lengths)} cached; median of {args.repeats}")
    print(f"padded (baseline) {baseline:.2f} s, exact {exact:.2f} s: {baseline / exact:.2f}x")


if __name__ == "__main__":
    main()
