"""Accuracy of each domain's unoptimized program on the base model, on a split.

    python bench/base_accuracy.py [--model smollm2] [--split test] [--domains financial,legal] [--limit N]

Each domain's program runs with an empty context through the ax client (8 DSPy threads,
batched); the score is the domain metric's mean with a 95% Wilson interval, plus the
floor of always answering the majority label where the domain has labels.
"""

from __future__ import annotations

import argparse
import math
import time

import dspy

import ax
from ax.programs import get_domain, list_domains


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--domains", default=",".join(list_domains()))
    parser.add_argument("--limit", type=int, default=None, help="first N items of the split")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    lm = ax.LM(args.model, cache=False)
    print(f"model={args.model} split={args.split} limit={args.limit or 'all'}")
    print(f"{'domain':18s} {'items':>5s} {'accuracy':>8s}  95% CI          seconds")
    for name in args.domains.split(","):
        domain = get_domain(name)
        items = getattr(domain.splits(), args.split)[: args.limit]
        started = time.perf_counter()

        def score(gold, pred, trace=None):
            return domain.metric(gold, pred).score

        with dspy.context(lm=lm):
            result = dspy.Evaluate(devset=items, metric=score, num_threads=args.threads,
                                   display_progress=False, provide_traceback=False)(domain.program())
        accuracy = result.score / 100
        low, high = wilson(accuracy * len(items), len(items))
        print(f"{name:18s} {len(items):5d} {accuracy:8.3f}  [{low:.3f}, {high:.3f}]  "
              f"{time.perf_counter() - started:7.0f}")


if __name__ == "__main__":
    main()
