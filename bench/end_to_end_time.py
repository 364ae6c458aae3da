"""Wall time of the main job on imported data of real datasets' sizes, as a user runs it.

    python bench/end_to_end_time.py --fixture sentences --rows 2000     # goal: <= 10 minutes
    python bench/end_to_end_time.py --fixture passage_qa --rows 1000    # goal: <= 15 minutes
    python bench/end_to_end_time.py --fixture passage_qa --rows 1000 --dtype float32    # exact fp32 weights

Generates the fixture (ax.programs.fixtures: a three-label sentence set with a 60% majority, or
yes/no/maybe questions over ~250-token passages), then runs, each timed as its own process:
`ax data import FILE --domain NAME ...` and `ax compare --domain NAME --run-dir DIR` (quick preset,
one seed, playbooks on: the defaults), with the response cache off (AX_NO_CACHE=1), so that a rerun
answers every call again instead of reading the last run's answers. Prints each command's wall time
and the report's accuracy beside the majority floor. There is no baseline: the figure is a time
goal, not a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = {"sentences": (["text"], "label"), "passage_qa": (["question", "passage"], "answer")}


def timed(words: list[str]) -> float:
    print(f"$ {shlex.join(words)}", flush=True)
    started = time.perf_counter()
    subprocess.run(words, check=True, env={**os.environ, "AX_NO_CACHE": "1"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", choices=sorted(COLUMNS), default="sentences")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--dtype", default=None, help="passed to ax compare (default: its own, bf16 on a CPU with native bf16)")
    args = parser.parse_args()
    from ax.programs import fixtures

    name = f"{args.fixture}{args.rows}"
    run_dir = args.run_dir or Path("runs") / "time" / (name + (f"-{args.dtype}" if args.dtype else ""))
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists: a timing starts from an empty run directory; remove it first")
    rows = getattr(fixtures, args.fixture)(args.rows, seed=0)
    source = fixtures.write_jsonl(rows, run_dir.parent / f"{name}.jsonl")
    inputs, label = COLUMNS[args.fixture]
    ax = str(Path(sys.executable).with_name("ax"))
    imported = timed([ax, "data", "import", str(source), "--domain", name, *(w for c in inputs for w in ("--input", c)),
                      "--label", label, "--force"])
    compared = timed([ax, "compare", "--domain", name, "--run-dir", str(run_dir),
                      *(["--dtype", args.dtype] if args.dtype else [])])
    report = json.loads((run_dir / "report" / "report.json").read_text())
    comparison = report["comparisons"][0]
    print(f"\n{name}: import {imported:.0f} s, compare {compared:.0f} s ({compared / 60:.1f} min), "
          f"{comparison['items']} test items, majority floor {100 * comparison['floors']['majority']:.1f}%")
    for cell in comparison["cells"]:
        acc, f1 = cell["accuracy"], cell["classes"]["macro_f1"] if cell.get("classes") else None
        print(f"  {cell['cell']:10s} accuracy {100 * acc['estimate']:.1f}% [{100 * acc['low']:.1f}, "
              f"{100 * acc['high']:.1f}]  macro-F1 {'—' if f1 is None else f'{100 * f1:.1f}%'}  "
              f"flags: {', '.join(cell['flags']) or 'none'}")
    for check in report.get("adaptive") or []:
        print(f"  adaptive check: {check['sentence']}")


if __name__ == "__main__":
    main()
