"""Accuracy of each domain's unoptimized program on the base model, beside its floors.

    python bench/base_accuracy.py [--model smollm2] [--split test] [--domains financial,legal] [--run-dir DIR]

Each domain's shipped program (no context, no adapter) answers the split through ax's own
evaluator (responses stored under --run-dir, so a rerun reuses them) and is scored by ax's
report: an item counts when fully correct (legal needs both fields), 95% Wilson interval,
macro-F1 for classification, and the flags the report gives. Beside it the floors: the
majority (best constant) answer, uniform chance, and the nearest-training-item floor of
`ax domains stats` (word overlap, no model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ax
from ax.configuration import Configuration
from ax.evals.report import ReportSettings, build_report
from ax.evals.runner import evaluate_run_dir
from ax.programs import get_domain
from ax.programs.domain import BUILTIN_DOMAINS
from ax.programs.floors import domain_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--domains", default=",".join(BUILTIN_DOMAINS))
    parser.add_argument("--run-dir", default="runs/bench/base_accuracy")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    lm = ax.LM(args.model)
    print(f"model={args.model} split={args.split} run_dir={args.run_dir}")
    print("| domain | task | items | accuracy [95% CI] | macro-F1 | majority floor | chance | nearest-train floor "
          "| flags | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.domains.split(","):
        domain = get_domain(name)
        started = time.perf_counter()
        baseline = Configuration(name="baseline", domain=name, lora=False, gepa=False,
                                 source="the shipped program on the base model")
        evaluate_run_dir(Path(args.run_dir), [baseline], domain, lm=lm, split=args.split, num_threads=args.threads)
        settings = ReportSettings(n_bootstrap=200, power_simulations=10, domains=[name], split=args.split)
        comparison = build_report(args.run_dir, settings).comparisons[0]
        cell, floors, stats = comparison.cells[0], comparison.floors, domain_stats(domain)
        accuracy = cell.accuracy
        print(f"| {name} | {domain.task} | {comparison.items} | {100 * accuracy.estimate:.1f}% "
              f"[{100 * accuracy.low:.1f}, {100 * accuracy.high:.1f}] | "
              f"{f'{100 * cell.classes.macro_f1:.1f}%' if cell.classes else '—'} | {100 * floors.majority:.1f}% | "
              f"{f'{100 * floors.chance:.1f}%' if floors.chance else '—'} | "
              f"{f'{100 * stats.nearest_neighbour_floor:.1f}%' if domain.task == 'classification' else '—'} | "
              f"{'; '.join(cell.flag_reasons) or 'none'} | {time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
