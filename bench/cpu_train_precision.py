"""LoRA training on a CPU in fp32 and under bf16 autocast: tokens a second and memory.

    python bench/cpu_train_precision.py              # SmolLM2-135M, passage-QA fixture pairs, batch 8, 4 steps
    python bench/cpu_train_precision.py --repeat 3   # each passage three times: prompts as long as a 77-label intent prompt
    python bench/cpu_train_precision.py --repeat 3 --max-batch-tokens none   # device batches not capped

The baseline is fp32 (a LoRA step of an `ax compare --dtype float32` run, the default on a CPU
without native bf16); the other run is what a LoRA step of a bf16 CPU run (the default where the
CPU has native bf16) trains with: the base's weights in bf16, `bf16: true` autocast, the adapter
weights kept fp32. Both train ax's default path (group_by_length, fused LoRA) on the same pairs with
the same seed, each in a fresh process so that its peak resident memory is its own. Printed per run:
tokens a second over the whole run, peak RSS, RSS once `train_adapter` has returned
(it hands freed heap pages back to the system), and the first and last loss. `--max-batch-tokens`
(default the config's `auto`: 2048 on a CPU) caps a device batch's rows x widest row; batches over
it train as accumulated steps of fewer rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile


def _rss_gib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def train_once(bf16: bool, words: int, steps: int, batch: int, repeat: int, max_batch_tokens: str) -> dict:
    from ax.adapters.config import LoraTrainingConfig
    from ax.adapters.dataset import TrainingPair
    from ax.adapters.peft_model import load_training_base
    from ax.adapters.train import train_adapter
    from ax.programs import fixtures

    rows = fixtures.passage_qa(steps * batch, seed=0)
    pairs = [TrainingPair(prompt=f"Question: {r['question']}\nPassage: {' '.join(r['passage'].split()[:words] * repeat)}\n"
                                 "Answer (yes, no or maybe):", completion=r["answer"]) for r in rows]
    config = LoraTrainingConfig(max_steps=steps, per_device_batch_size=batch, bf16=bf16, early_stopping_patience=None,
                                logging_steps=1, warmup_ratio=0.0,
                                max_batch_tokens=None if max_batch_tokens == "none" else max_batch_tokens)
    base = load_training_base("smollm2", config, dtype="bfloat16" if bf16 else "float32")
    metrics = train_adapter(base, pairs, config, run_dir=tempfile.mkdtemp(), dev_pairs=[]).metrics
    return {"tokens": metrics.tokens_seen, "tokens_per_second": metrics.tokens_per_second,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "rss_after_gib": _rss_gib(),
            "first_loss": metrics.first_loss, "last_loss": metrics.last_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=300, help="at most this many passage words per prompt")
    parser.add_argument("--repeat", type=int, default=1, help="each passage this many times over")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-batch-tokens", default="auto", help="a number, auto or none")
    parser.add_argument("--child", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(args.child == "bf16", args.words, args.steps, args.batch, args.repeat,
                                    args.max_batch_tokens)))
        return
    results = {}
    for precision in ("fp32", "bf16"):
        out = subprocess.run([sys.executable, __file__, "--child", precision, "--words", str(args.words),
                              "--steps", str(args.steps), "--batch", str(args.batch), "--repeat", str(args.repeat),
                              "--max-batch-tokens", args.max_batch_tokens],
                             check=True, capture_output=True, text=True).stdout
        results[precision] = r = json.loads(out.strip().splitlines()[-1])
        print(f"{precision}: {r['tokens']} tokens, {r['tokens_per_second']:.0f} tokens/s, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB, RSS after training {r['rss_after_gib']:.2f} GiB, "
              f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}", flush=True)
    fp32, bf16 = results["fp32"], results["bf16"]
    print(f"ratio (bf16 autocast / fp32, tokens/s): {bf16['tokens_per_second'] / fp32['tokens_per_second']:.2f}x; "
          f"peak RSS {bf16['peak_rss_gib']:.2f} / {fp32['peak_rss_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
