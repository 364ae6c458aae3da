"""Soak: thousands of DSPy calls from many threads over several adapters, some abandoned by their callers.

Baseline: the sequential answers. Before the soak, every (prompt, adapter) pair the soak draws
from is answered once, one call at a time, by the same client. Then `--calls` calls (random pairs)
run from `--threads` caller threads; a share of them (`--abandon`) is given up by its caller after
a random short wait (the call itself runs on, as a timed-out DSPy call does). Every answer a
caller does receive must equal the sequential answer of its pair, and the process's resident
memory may grow less than `--max-growth` percent from the end of the warm-up (the first tenth
of the calls) to the end. The adapters are random-init rank-8 LoRAs made on the fly in ax's
format (greedy answers then differ per adapter); the response cache is off, so each call decodes.

Printed: calls, completed, abandoned, mismatches, RSS at warm-up and end, growth %, wall time.
Exits 1 on a mismatch or on too much growth. Not run in CI.

    python bench/soak.py                      # tiny random-init model (a few minutes on 2 cores)
    python bench/soak.py --calls 400          # a shorter check
    python bench/soak.py --model smollm2      # the embedded model
    python bench/soak.py --no-pack            # linear layers on PyTorch's fp32 kernels, not oneDNN-packed
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from pathlib import Path

import dspy
import psutil

import ax
from ax.model import local_directory, resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny model the tests make, not shipped
from tiny_model import make_tiny_adapter, make_tiny_model  # noqa: E402

TOPICS = ["a lease's early termination clause", "quarterly revenue growth", "chest pain triage",
          "a refund request", "a course prerequisite", "a factory's defect rate"]


def resident_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


class Soak:
    """Runs calls from caller threads, each call on a pool thread so that its caller may give up on it."""

    def __init__(self, lm: dspy.LM, adapters: list[str], args: argparse.Namespace):
        self.views = {name: lm.with_adapter(name) for name in adapters}
        self.baseline: dict[tuple[str, str], dict] = {}  # (question, adapter) -> the sequential answer
        self.args = args
        self.predict = dspy.Predict("question -> answer")
        self.pool = ThreadPoolExecutor(2 * args.threads)
        self.lock = threading.Lock()
        self.completed = self.abandoned = 0
        self.mismatches: list[tuple[str, str, dict, dict]] = []

    def answer(self, question: str, adapter: str) -> dict:
        with dspy.context(lm=self.views[adapter]):
            return self.predict(question=question).toDict()

    def call(self, question: str, adapter: str, patience: float | None) -> None:
        future = self.pool.submit(self.answer, question, adapter)
        try:
            got = future.result(timeout=patience)
        except TimeoutError:
            with self.lock:
                self.abandoned += 1
            return
        with self.lock:
            self.completed += 1
            if got != self.baseline[(question, adapter)]:
                self.mismatches.append((question, adapter, got, self.baseline[(question, adapter)]))

    def run(self, calls: list[tuple[str, str, float | None]]) -> None:
        shares = [calls[i::self.args.threads] for i in range(self.args.threads)]
        callers = [threading.Thread(target=lambda share=share: [self.call(*c) for c in share]) for share in shares]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="'smollm2', an HF directory or a .gguf (default: tiny random-init)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=30, help="distinct questions the calls draw from")
    parser.add_argument("--abandon", type=float, default=0.25, help="share of calls their caller may give up on")
    parser.add_argument("--max-wait", type=float, default=0.3, help="longest an impatient caller waits, seconds")
    parser.add_argument("--max-tokens", type=int, default=32, help="token budget of each answer")
    parser.add_argument("--max-growth", type=float, default=5.0, help="allowed RSS growth after warm-up, percent")
    parser.add_argument("--no-pack", action="store_true", help="ax.LM(pack_weights=False)")
    # fp32 whatever the default: a row's fp32 arithmetic does not follow its batch's shape, bf16 rounding may
    parser.add_argument("--dtype", default="float32", help="the weights' dtype (ax.LM(dtype=...))")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dspy.configure(disable_history=True)  # DSPy's per-call history would grow by design, hiding the client's
    with tempfile.TemporaryDirectory(prefix="ax-soak-") as scratch:
        return soak(args, Path(scratch))


def soak(args: argparse.Namespace, scratch: Path) -> int:
    rng = random.Random(args.seed)
    model = args.model or make_tiny_model(scratch / "tiny")
    model_dir = local_directory(resolve(model))
    adapters = {f"lora{i}": make_tiny_adapter(model_dir, scratch / f"lora{i}", seed=i + 1, rank=8, scale=8)
                for i in range(args.adapters)}
    questions = [f"What should an analyst check first about {TOPICS[i % len(TOPICS)]} (case {i})?"
                 for i in range(args.prompts)]
    pairs = [(q, a) for q in questions for a in adapters]

    with ax.LM(str(model), adapters=adapters, cache=False, max_field_tokens=args.max_tokens,
               max_batch_size=args.threads, pack_weights=not args.no_pack, dtype=args.dtype) as lm:
        started = time.perf_counter()
        runner = Soak(lm, list(adapters), args)
        runner.baseline = {pair: runner.answer(*pair) for pair in pairs}
        distinct = len({str(answer) for answer in runner.baseline.values()})
        print(f"baseline: {len(pairs)} (prompt, adapter) pairs answered one at a time, {distinct} distinct answers, "
              f"{time.perf_counter() - started:.1f}s", flush=True)

        calls = [(*rng.choice(pairs), rng.uniform(0.005, args.max_wait) if rng.random() < args.abandon else None)
                 for _ in range(args.calls)]
        warmup = max(1, args.calls // 10)
        started = time.perf_counter()
        runner.run(calls[:warmup])
        rss_warm = resident_mb()
        runner.run(calls[warmup:])
        runner.pool.shutdown(wait=True)  # abandoned calls end too: none is in flight at the end figure
        rss_end = resident_mb()
        wall = time.perf_counter() - started

    growth = 100 * (rss_end - rss_warm) / rss_warm
    print(f"calls {args.calls}  completed {runner.completed}  abandoned {runner.abandoned}  "
          f"mismatches {len(runner.mismatches)}")
    print(f"RSS after warm-up {rss_warm:.1f} MiB  at end {rss_end:.1f} MiB  growth {growth:+.2f}%  "
          f"wall {wall:.1f}s ({args.threads} threads, {args.adapters} adapters, model {model_dir})")
    for question, adapter, got, expected in runner.mismatches[:5]:
        print(f"MISMATCH {adapter} {question!r}: got {got} expected {expected}")
    if growth >= args.max_growth:
        print(f"FAIL: resident memory grew {growth:.2f}% (limit {args.max_growth}%)")
    return 1 if runner.mismatches or growth >= args.max_growth else 0


if __name__ == "__main__":
    sys.exit(main())
