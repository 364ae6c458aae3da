"""`ax evaluate` (answer items, store responses) and `ax report` (numbers and plots from stored responses).

The lead mounts them as commands of the main app: ("ax.evals.cli", "evaluate_cmd", "evaluate")
and ("ax.evals.cli", "report_cmd", "report"). Both print an AxError as one red `error:` line and exit 1
(ax.cli_common.handle_errors, as every ax command does).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

import ax
from ax.cli_common import DTYPE, WORKERS, handle_errors
from ax.configuration import CONFIGURATIONS_FILE, load_configurations
from ax.errors import AxError
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import RunSummary, evaluate_in_workers, evaluate_run_dir
from ax.programs import get_domain

console = Console(stderr=True)


def report_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory holding responses/ (written by `ax evaluate`)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the report (default: RUN_DIR/report)."),
    bootstrap: int = typer.Option(2000, help="Bootstrap replicates for every interval."),
    seed: int = typer.Option(0, help="Seed of the bootstraps, the mixed model and the power simulations."),
    power_simulations: int = typer.Option(200, help="Simulated designs for the power of the synergy test."),
    domain: Optional[list[str]] = typer.Option(None, help="Only these domains (repeatable; default: all evaluated)."),
    split: str = typer.Option("test", help="Which split's answers the report covers: train, dev or test."),
):
    """Write report.md, report.html (self-contained, with plots), report.json and manifest.json from responses."""
    from ax.evals.render import write_report  # matplotlib and scipy: not for `ax --help`
    from ax.evals.report import REPORT_DIR, ReportSettings, build_report  # scipy, likewise

    with handle_errors():
        try:
            settings = ReportSettings(n_bootstrap=bootstrap, seed=seed, power_simulations=power_simulations,
                                      domains=list(domain or []), split=split)
        except ValidationError as error:
            first = error.errors()[0]
            option = {"n_bootstrap": "bootstrap"}.get(str(first["loc"][0]), str(first["loc"][0]))
            raise AxError(f"--{option.replace('_', '-')} = {first['input']!r}: {first['msg']}") from None
        target = out or run_dir / REPORT_DIR
        files = write_report(build_report(run_dir, settings, out=target), target)
    console.print(f"Report written: {files.html}, {files.markdown}, {files.json_path}, {files.manifest}",
                  soft_wrap=True)


def evaluate_cmd(
    domain: str = typer.Option(..., help="Domain whose items are answered."),
    run_dir: Path = typer.Option(..., help="Run directory: responses are stored in RUN_DIR/responses."),
    configs: Optional[Path] = typer.Option(None, help=f"Configurations file (default: RUN_DIR/{CONFIGURATIONS_FILE})."),
    only: Optional[list[str]] = typer.Option(None, help="Only these configuration names (repeatable)."),
    model: str = typer.Option("smollm2", help="Base model: 'smollm2', an HF directory, a .gguf file or a hub id."),
    dtype: Optional[str] = DTYPE,
    split: str = typer.Option("test", help="Which split's items: train, dev or test."),
    limit: Optional[int] = typer.Option(None, help="Only the split's first N items."),
    threads: int = typer.Option(16, help="DSPy threads (the client batches across them)."),
    workers: int = WORKERS,
    adaptive: bool = typer.Option(False, help="Score each configuration adaptively on the stored, calibrated items."),
    max_items: Optional[int] = typer.Option(None, help="Adaptive: item budget (default: a quarter of the items)."),
    target_se: Optional[float] = typer.Option(
        None, help="Adaptive: stop once the forecast accuracy's standard error is this small, as a fraction "
                   "(default 0.02: a mean error of 2 accuracy points, allowing for calibration error)."),
):
    """Answer a domain's items with each configuration and store every response; stored answers are skipped."""
    words = ["ax", "evaluate", "--domain", domain, "--run-dir", str(run_dir), "--model", model, "--split", split]
    words += ["--dtype", dtype] if dtype else []
    words += ["--configs", str(configs)] if configs else []
    words += [w for name in only or [] for w in ("--only", name)]
    words += ["--limit", str(limit)] if limit else []
    if adaptive:
        words += ["--adaptive"] + (["--target-se", str(target_se)] if target_se is not None else [])
        words += ["--max-items", str(max_items)] if max_items else []
    command = shlex.join(words)
    with handle_errors():
        chosen = load_configurations(configs or run_dir / CONFIGURATIONS_FILE).select(domain, list(only or []))
        task = get_domain(domain)
        if adaptive:
            from ax.evals.adaptive import MIN_ADAPTIVE_ITEMS, TARGET_STANDARD_ERROR  # scipy: not for `ax --help`
            from ax.evals.adaptive_eval import adaptive_evaluate, adaptive_in_workers  # scipy, likewise
            from ax.evals.comparison import Truth  # scipy

            options = dict(max_items=max_items, command=command,
                           target_standard_error=TARGET_STANDARD_ERROR if target_se is None else target_se)
            results = (adaptive_in_workers(run_dir, chosen, domain, workers=workers, model=model, dtype=dtype,
                                           **options) if workers > 1 else
                       adaptive_evaluate(chosen, task, lm=ax.LM(model, dtype=dtype), store=ResponseStore(run_dir),
                                         **options))
            truth = Truth.of(ResponseStore(run_dir).matrix(domain, "test"))
            floor = f" (majority floor {100 * truth.floors.majority:.1f}%)" if truth else ""
            for result in results:
                e = result.estimate
                console.print(f"{result.name}: predicted accuracy {100 * e.accuracy:.1f}% "
                              f"± {100 * e.accuracy_standard_error:.1f} points{floor} from {len(e.items)} of "
                              f"{e.pool_items} items by {e.method} ({e.stop_reason}; sampling floor "
                              f"{100 * e.sampling_floor:.1f} points; replayed on the pool it missed by "
                              + ("?" if e.held_out_error is None else f"{100 * e.held_out_error:.1f}") + " points)",
                              soft_wrap=True)
                if e.pool_items < MIN_ADAPTIVE_ITEMS:
                    console.print(f"  {e.pool_items} items, under {MIN_ADAPTIVE_ITEMS}: the unasked items alone leave a "
                                  f"mean error of about {100 * e.sampling_floor:.1f} points, so this is no 2-point "
                                  "estimate", soft_wrap=True)
            return
        if workers > 1:
            summary = evaluate_in_workers(run_dir, chosen, domain, workers=workers, model=model, dtype=dtype,
                                          split=split, limit=limit, num_threads=threads, command=command)
            _print_summary(summary)
            return
        lm = ax.LM(model, dtype=dtype)
        summary = evaluate_run_dir(run_dir, chosen, task, lm=lm, split=split, limit=limit, num_threads=threads,
                                   command=command, show_progress=True)
    _print_summary(summary)
    usage = lm.usage_summary()
    console.print(f"{usage['calls']} LM calls ({usage['cached_calls']} from cache)", soft_wrap=True)


def _print_summary(summary: RunSummary) -> None:
    for name, new in summary.new_cells.items():
        taken = (f" (taken from {summary.copied_from[name]}: the same program, adapter, playbook and model)"
                 if name in summary.copied_from else "")
        console.print(f"{name}: {new} new answers{taken}, {summary.stored_cells[name]} already stored", soft_wrap=True)
    console.print(f"{summary.parse_failures} unparseable outputs scored as wrong", soft_wrap=True)
