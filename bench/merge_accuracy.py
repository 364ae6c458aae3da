"""What merging domain adapters costs: each domain's accuracy with one merged adapter vs. its own adapter.

    .venv/bin/python bench/merge_accuracy.py [--domains customer_service,healthcare] [--steps 8] [--limit 20]

Trains a small adapter per domain on its train split (same settings, so equal ranks), merges
them with ax.adapters.merge (PEFT's "linear", equal weights 1/n; and "ties", weights 1 and
--density), then answers the first --limit test items of each domain with the base model, the
domain's own adapter and each merged adapter, through the ax client and the evaluator's runner
(ax.evals.runner). Reported per domain: accuracy with a 95% Wilson interval, and merged minus
own accuracy on the same items with a 95% paired-bootstrap interval. Budgets here are tiny
(CPU), so an own adapter may barely beat the base: read "own" against "base" before the merges.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import ax
from ax.adapters.config import load_config
from ax.adapters.dataset import domain_pairs
from ax.adapters.merge import merge_adapters
from ax.adapters.peft_model import load_training_base
from ax.adapters.train import train_and_save
from ax.configuration import Configuration
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import domain_items, evaluate_configurations
from ax.evals.stats import paired_bootstrap_difference, wilson_interval
from ax.model import load_model
from ax.programs import get_domain

METHODS = ("linear", "ties")


def train_domain(model_dir: str, task, config, train: int | None, target: Path) -> tuple[Path, float]:
    """One domain's adapter on the first `train` training examples; (its folder, seconds taken)."""
    started = time.perf_counter()
    base = load_training_base(model_dir, config)
    pairs = domain_pairs(base.tokenizer, task)[0][:train]
    # No dev pairs: no early stopping, so every domain trains exactly --steps steps.
    train_and_save(base, pairs, config, domain=task.name, target=target, dev_pairs=[])
    return target, time.perf_counter() - started


def accuracy(correct: list[bool]) -> str:
    interval = wilson_interval(sum(correct), len(correct))
    return f"{interval.estimate:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--domains", default="customer_service,healthcare", help="2 or 3 comma-separated domains")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per domain adapter")
    parser.add_argument("--train", type=int, default=None, help="first N training examples per domain (default all)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="high: the step budget is tiny")
    parser.add_argument("--limit", type=int, default=20, help="first N test items per domain")
    parser.add_argument("--density", type=float, default=0.5, help="fraction of each update TIES keeps")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    names = args.domains.split(",")
    if not 2 <= len(names) <= 3 or len(set(names)) != len(names):
        parser.error(f"--domains {args.domains!r}: give 2 or 3 distinct domains")
    for flag in ("steps", "batch_size", "limit", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    tasks = {name: get_domain(name) for name in names}
    items = {name: domain_items(task, "test", args.limit) for name, task in tasks.items()}

    print(f"$ {shlex.join(['python', *sys.argv])}")
    lm = ax.LM(args.model, cache=False)
    model_dir = str(lm.client.model_directory)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        own = {}
        for name, task in tasks.items():
            config = load_config(None, name).with_overrides(
                max_steps=args.steps, per_device_batch_size=args.batch_size, gradient_accumulation_steps=1,
                learning_rate=args.learning_rate, warmup_ratio=0.0)
            own[name], seconds = train_domain(model_dir, task, config, args.train, work / "adapters" / name)
            print(f"trained {name}: r={config.r}, {args.steps} steps of {args.batch_size}, lr {args.learning_rate:g}, "
                  f"{seconds:.0f} s")
        merged = {}
        for method in METHODS:
            weights = [1.0 / len(own)] * len(own) if method == "linear" else [1.0] * len(own)
            # merge_adapters loads the sources into the base it is given, so each merge gets a fresh one.
            merge_adapters(load_model(model_dir), own, work / "adapters" / f"merged-{method}", weights=weights,
                           combination_type=method, density=args.density)
            merged[method] = work / "adapters" / f"merged-{method}"
        print(f"merged: linear (weights 1/{len(own)}), ties (weights 1, density {args.density:g})\n")

        store = ResponseStore(work, create=True)
        columns = ["base", "own", *METHODS]
        print(f"{'domain':<18} {'items':>5}  " + "  ".join(f"{c:<19}" for c in columns)
              + "  " + "  ".join(f"{m + ' - own':<21}" for m in METHODS))
        started = time.perf_counter()
        for name, task in tasks.items():
            adapters = {"base": None, "own": own[name], **merged}
            configurations = [Configuration(name=label, domain=name, lora=path is not None, gepa=False,
                                            role="calibration", adapter=path) for label, path in adapters.items()]
            evaluate_configurations(configurations, task, lm=lm, store=store, items=items[name],
                                    num_threads=args.threads)
            correct = {}
            for label in columns:
                by_item = {cell.item: cell.correct for cell in store.read(name, label).cells}
                correct[label] = [by_item[str(item.id)] for item in items[name]]
            differences = [paired_bootstrap_difference(correct[m], correct["own"]) for m in METHODS]
            print(f"{name:<18} {len(items[name]):>5}  " + "  ".join(accuracy(correct[c]) for c in columns) + "  "
                  + "  ".join(f"{d.estimate:+.3f} [{d.low:+.2f}, {d.high:+.2f}]" for d in differences))
    print(f"\nanswers: {time.perf_counter() - started:.0f} s; accuracy with 95% Wilson intervals, "
          f"differences with 95% paired item-bootstrap intervals")


if __name__ == "__main__":
    main()
