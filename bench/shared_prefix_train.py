"""LoRA training on a CPU with a batch's shared prompt prefix computed once, against padded batches.

The pairs are what the LoRA stage of `ax compare` trains on the passage-QA fixture (imported with
`--input question --input passage`, as bench/end_to_end_time.py does): the program's DSPy chat
prompt of each train example with its label, under the imported program's instruction, or with
`--instruction-words N`, an instruction N words longer (GEPA's instructions carry worked examples;
the combined configuration's LoRA step trains under one). Settings are the quick preset's LoRA
step: 12 optimizer steps of 4 examples, SmolLM2-135M, its dtype on this CPU (bf16 weights and
autocast where native). The baseline is ax's padded, length-grouped batches (`share_prefix: false`,
the default before; their speed against TRL's packing trainer is bench/train_throughput.py's); the
other arm is the same settings with `share_prefix: true`. Each arm trains in a fresh process, in
turns, `--repeats` times; printed per run: wall time of training, example tokens a second, the
device batches where the 2,048-token cap splits a step, the first and last loss.

    python bench/shared_prefix_train.py
    python bench/shared_prefix_train.py --instruction-words 200
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def train_once(share: bool, rows: int, instruction_words: int) -> dict:
    import torch

    from ax.adapters.config import LoraTrainingConfig
    from ax.adapters.dataset import labelled_predictors, predictor_label_pairs
    from ax.adapters.peft_model import load_training_base
    from ax.adapters.train import train_adapter
    from ax.model import pick_dtype
    from ax.programs import fixtures
    from ax.programs.imported import import_domain

    with tempfile.TemporaryDirectory() as folder:
        source = fixtures.write_jsonl(fixtures.passage_qa(rows, seed=0), Path(folder) / "passages.jsonl")
        domain = import_domain(source, "passages", ["question", "passage"], "answer", out=folder).domain
        train = domain.splits().train[:24]
        program = domain.program()
        if instruction_words:
            for _, predictor in program.named_predictors():
                words = " ".join(f"example{i}" for i in range(instruction_words))
                predictor.signature = predictor.signature.with_instructions(
                    f"{predictor.signature.instructions}\n{words}")
        config = LoraTrainingConfig(max_steps=12, per_device_batch_size=4, gradient_accumulation_steps=1,
                                    warmup_ratio=0.0, logging_steps=1, dev_fraction=0.0, save_steps=1000,
                                    early_stopping_patience=None, share_prefix=share,
                                    bf16=pick_dtype("cpu") == torch.bfloat16)
        base = load_training_base("smollm2", config, dtype=str(pick_dtype("cpu")).removeprefix("torch."))
        labelled = labelled_predictors(program, train[0])
        pairs = [pair for group in predictor_label_pairs(base.tokenizer, labelled, train).values() for pair in group]
        result = train_adapter(base, pairs, config, run_dir=Path(folder) / "run", dev_pairs=[])
    metrics = result.metrics
    return {"wall_s": metrics.wall_time_s, "tokens": metrics.tokens_seen, "tokens_per_second": metrics.tokens_per_second,
            "first_loss": metrics.first_loss, "last_loss": metrics.last_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="fixture rows generated (the train split is 60%%)")
    parser.add_argument("--instruction-words", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("padded", "shared"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("ax.adapters.train").setLevel(logging.INFO)  # the device batches, when capped
        print(json.dumps(train_once(args.child == "shared", args.rows, args.instruction_words)))
        return
    walls: dict[str, list[float]] = {"padded": [], "shared": []}
    for _ in range(args.repeats):
        for arm in walls:
            out = subprocess.run([sys.executable, __file__, "--child", arm, "--rows", str(args.rows),
                                  "--instruction-words", str(args.instruction_words)],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            capped = next((line for line in out.stderr.splitlines() if line.startswith("Device batches")), None)
            walls[arm].append(r["wall_s"])
            print(f"{arm}: {r['wall_s']:.1f} s, {r['tokens']} example tokens, {r['tokens_per_second']:.0f} tokens/s, "
                  f"{(capped or 'device batches of 4 rows').rstrip('.')}; loss {r['first_loss']:.3f} -> "
                  f"{r['last_loss']:.3f}", flush=True)
    padded, shared = (statistics.median(walls[arm]) for arm in ("padded", "shared"))
    print(f"median training time: padded {padded:.1f} s, shared prefix {shared:.1f} s: {padded / shared:.2f}x")


if __name__ == "__main__":
    main()
