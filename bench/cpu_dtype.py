"""bf16 against fp32 weights on the CPU, in speed and in accuracy, on the built-in domains.

On a CPU with native bf16 (AVX512-BF16 or AMX) ax loads the model in bf16 by default; `--dtype
float32` (`ax.LM(dtype="float32")`) keeps the GGUF's weights dequantized exactly. Each built-in
domain's shipped program (no adapter, no context) answers its test items with each dtype, through
ax's evaluator, response cache off; arms alternate by domain (a shared machine drifts). With
`--lora`, each dtype also trains the domain's LoRA configuration (`ax optimize --configs lora
--no-context`, quick preset, seed 0: a bf16 run trains under bf16 autocast, an fp32 one in fp32)
and answers with it. Printed per domain and configuration, and pooled: accuracy of each, bf16 minus
fp32 with a paired bootstrap 95% interval and the exact McNemar p, answers that differ, and seconds
of each domain (its first row; training included). There is no other baseline here: the question is what bf16 changes
against exact fp32 weights.

    python bench/cpu_dtype.py                                   # all twelve domains, test split
    python bench/cpu_dtype.py --domains legal,financial --limit 24
    python bench/cpu_dtype.py --lora --domains healthcare,legal,operations
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console

import ax
from ax.configuration import Configuration
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import evaluate_run_dir
from ax.evals.stats import mcnemar_exact, paired_bootstrap_difference
from ax.optimizers.configurations import optimize
from ax.optimizers.respondents import comparison
from ax.programs import get_domain
from ax.programs.domain import BUILTIN_DOMAINS
from ax.programs.floors import examples_majority_floor

DTYPES = ("float32", "bfloat16")


def _row(label: str, items: int, floor: str, correct: dict, answers: dict | None, took: dict | None) -> str:
    difference = paired_bootstrap_difference(correct["bfloat16"], correct["float32"])
    differing = "" if answers is None else sum(a != b for a, b in zip(answers["float32"], answers["bfloat16"]))
    return (f"| {label} | {items} | {floor} | {100 * correct['float32'].mean():.1f}% | "
            f"{100 * correct['bfloat16'].mean():.1f}% | {100 * difference.estimate:+.1f} "
            f"[{100 * difference.low:+.1f}, {100 * difference.high:+.1f}] | "
            f"{mcnemar_exact(correct['bfloat16'], correct['float32']).p_value:.2f} | {differing} | "
            + (f"{took['float32']:.0f} | {took['bfloat16']:.0f} |" if took else " | |"))


def _configurations(name: str, dtype: str, lm: ax.LM, run_dir: Path, lora: bool) -> list[Configuration]:
    baseline = Configuration(name="baseline", domain=name, lora=False, gepa=False, source=f"the shipped program, {dtype}")
    if not lora:
        return [baseline]
    manifests = optimize(name, configs=["lora"], seeds=[0], preset="quick", run_dir=run_dir, lm=lm, context=False,
                         console=Console(stderr=True, quiet=True), show_progress=False)
    return [baseline, comparison(manifests[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default=",".join(BUILTIN_DOMAINS))
    parser.add_argument("--limit", type=int, default=None, help="only each test split's first N items")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--lora", action="store_true", help="also train and answer with each domain's LoRA configuration")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench/cpu_dtype"))
    args = parser.parse_args()
    lms = {dtype: ax.LM(cache=False, dtype=dtype) for dtype in DTYPES}
    seconds = {dtype: 0.0 for dtype in DTYPES}
    pooled: dict[str, dict[str, list]] = {}
    print(f"run_dir={args.run_dir} limit={args.limit} threads={args.threads} lora={args.lora}")
    print("| domain / configuration | items | majority floor | fp32 | bf16 | bf16 - fp32 [95% CI] | McNemar p "
          "| answers differing | fp32 s | bf16 s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for turn, name in enumerate(args.domains.split(",")):
        domain = get_domain(name)
        correct, answers, took = {}, {}, {}
        for dtype in DTYPES if turn % 2 == 0 else reversed(DTYPES):
            run_dir = args.run_dir / dtype
            started = time.perf_counter()
            configurations = _configurations(name, dtype, lms[dtype], run_dir, args.lora)
            evaluate_run_dir(run_dir, configurations, domain, lm=lms[dtype], limit=args.limit,
                             num_threads=args.threads)
            took[dtype] = time.perf_counter() - started
            for index, configuration in enumerate(configurations):
                cells = sorted(ResponseStore(run_dir).read(name, configuration.name).cells, key=lambda c: c.item)
                correct[index, dtype] = np.array([c.correct for c in cells], dtype=float)
                answers[index, dtype] = [c.output for c in cells]
        for dtype in DTYPES:
            seconds[dtype] += took[dtype]
        floor = f"{100 * examples_majority_floor(domain, domain.splits().test[:args.limit]):.1f}%"
        for index, kind in enumerate(("baseline", "lora")[:1 + args.lora]):
            mine = {dtype: correct[index, dtype] for dtype in DTYPES}
            for dtype in DTYPES:
                pooled.setdefault(kind, {}).setdefault(dtype, []).append(mine[dtype])
            print(_row(f"{name} {kind}", len(mine["float32"]), floor, mine,
                       {dtype: answers[index, dtype] for dtype in DTYPES}, took if index == 0 else None),
                  flush=True)
    for kind, by_dtype in pooled.items():
        everything = {dtype: np.concatenate(by_dtype[dtype]) for dtype in DTYPES}
        print(_row(f"all {kind}", len(everything["float32"]), "", everything, None, None))
    print(f"speed: bf16 took {seconds['bfloat16']:.0f} s for what fp32 took {seconds['float32']:.0f} s "
          f"({seconds['float32'] / seconds['bfloat16']:.2f}x)")


if __name__ == "__main__":
    main()
