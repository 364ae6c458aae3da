"""The CPU weight option: bf16 against fp32, in speed and in accuracy, on the built-in domains.

`ax.LM(dtype="bfloat16")` (`--dtype bfloat16` where a command takes a model) keeps the embedded
model's weights in bf16 on the CPU; the default stays fp32 (the GGUF's weights dequantized
exactly). Each built-in domain's shipped program (no adapter, no context) answers its test items
with each dtype, through ax's evaluator, response cache off; arms alternate by domain (a shared
machine drifts). Printed per domain and pooled: accuracy of each, bf16 minus fp32 with a paired
bootstrap 95% interval and the exact McNemar p, answers that differ, and seconds of each. There is
no other baseline here: the question is what the option changes against ax's own default.

    python bench/cpu_dtype.py                                   # all twelve domains, test split
    python bench/cpu_dtype.py --domains legal,financial --limit 24
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import ax
from ax.configuration import Configuration
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import evaluate_run_dir
from ax.evals.stats import mcnemar_exact, paired_bootstrap_difference
from ax.programs import get_domain
from ax.programs.domain import BUILTIN_DOMAINS
from ax.programs.floors import examples_majority_floor

DTYPES = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default=",".join(BUILTIN_DOMAINS))
    parser.add_argument("--limit", type=int, default=None, help="only each test split's first N items")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench/cpu_dtype"))
    args = parser.parse_args()
    lms = {dtype: ax.LM(cache=False, dtype=dtype) for dtype in DTYPES}
    seconds = {dtype: 0.0 for dtype in DTYPES}
    pooled = {dtype: [] for dtype in DTYPES}
    print(f"run_dir={args.run_dir} limit={args.limit} threads={args.threads}")
    print("| domain | items | majority floor | fp32 | bf16 | bf16 - fp32 [95% CI] | McNemar p | answers differing "
          "| fp32 s | bf16 s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for turn, name in enumerate(args.domains.split(",")):
        domain = get_domain(name)
        correct, answers, took = {}, {}, {}
        for dtype in DTYPES if turn % 2 == 0 else reversed(DTYPES):
            run_dir = args.run_dir / dtype
            started = time.perf_counter()
            baseline = Configuration(name="baseline", domain=name, lora=False, gepa=False,
                                     source=f"the shipped program, {dtype}")
            evaluate_run_dir(run_dir, [baseline], domain, lm=lms[dtype], limit=args.limit, num_threads=args.threads)
            took[dtype] = time.perf_counter() - started
            cells = sorted(ResponseStore(run_dir).read(name, "baseline").cells, key=lambda c: c.item)
            correct[dtype] = np.array([c.correct for c in cells], dtype=float)
            answers[dtype] = [c.output for c in cells]
        difference = paired_bootstrap_difference(correct["bfloat16"], correct["float32"])
        differing = sum(a != b for a, b in zip(answers["float32"], answers["bfloat16"]))
        for dtype in DTYPES:
            seconds[dtype] += took[dtype]
            pooled[dtype].append(correct[dtype])
        floor = examples_majority_floor(domain, domain.splits().test[:args.limit])
        print(f"| {name} | {len(correct['float32'])} | {100 * floor:.1f}% | {100 * correct['float32'].mean():.1f}% | "
              f"{100 * correct['bfloat16'].mean():.1f}% | {100 * difference.estimate:+.1f} "
              f"[{100 * difference.low:+.1f}, {100 * difference.high:+.1f}] | "
              f"{mcnemar_exact(correct['bfloat16'], correct['float32']).p_value:.2f} | {differing} | "
              f"{took['float32']:.0f} | {took['bfloat16']:.0f} |", flush=True)
    everything = {dtype: np.concatenate(pooled[dtype]) for dtype in DTYPES}
    difference = paired_bootstrap_difference(everything["bfloat16"], everything["float32"])
    print(f"| all | {len(everything['float32'])} | | {100 * everything['float32'].mean():.1f}% | "
          f"{100 * everything['bfloat16'].mean():.1f}% | {100 * difference.estimate:+.1f} "
          f"[{100 * difference.low:+.1f}, {100 * difference.high:+.1f}] | "
          f"{mcnemar_exact(everything['bfloat16'], everything['float32']).p_value:.2f} | | "
          f"{seconds['float32']:.0f} | {seconds['bfloat16']:.0f} |")
    print(f"speed: bf16 answered in {seconds['bfloat16']:.0f} s what fp32 answered in {seconds['float32']:.0f} s "
          f"({seconds['float32'] / seconds['bfloat16']:.2f}x)")


if __name__ == "__main__":
    main()
