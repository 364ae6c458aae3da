"""The main job: optimize the four configurations of each domain, answer its test items, write the report.

    from ax.pipeline import compare
    files = compare(["customer_service"], preset="quick", seeds=[0])

It strings the three parts together through their own interfaces (`ax.optimizers.optimize`,
`ax.evals.runner.evaluate_run_dir`, `ax.evals.report`), on one in-process LM so the model loads
once. Everything lands in `run_dir`; running the same command again reuses finished stages and
stored answers, so an interrupted comparison picks up where it stopped.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

import ax
from ax.configuration import CONFIGURATIONS_FILE, Configuration, load_configurations
from ax.errors import AxError
from ax.evals.adaptive_eval import adaptive_evaluate, adaptive_in_workers, adaptive_plan, calibration_rows
from ax.evals.comparison import Truth
from ax.evals.matrix_store import ResponseStore
from ax.evals.render import write_report
from ax.evals.report import REPORT_DIR, ReportSettings, build_report
from ax.evals.runner import evaluate_in_workers, evaluate_run_dir
from ax.optimizers import optimize
from ax.optimizers.configurations import optimize_in_workers
from ax.optimizers.presets import get_preset, preset_argument
from ax.programs.domain import Domain
from ax.programs.registry import get_domain


def compare_command(domains: Sequence[str], preset: str, seeds: Sequence[int], model: str | None, run_dir: Path,
                    reflection_lm: str | None, context: bool = True, ablate_context: bool = False,
                    dtype: str | None = None, adaptive: bool = False) -> str:
    words = ["ax", "compare", "--preset", preset, "--seeds", ",".join(map(str, seeds)), "--run-dir", str(run_dir)]
    words += [w for d in domains for w in ("--domain", d)]
    words += ["--model", model] if model else []
    words += ["--dtype", dtype] if dtype else []
    words += ["--reflection-lm", reflection_lm] if reflection_lm else []
    words += [] if context else ["--no-context"]
    words += ["--ablate-context"] if ablate_context else []
    words += ["--adaptive"] if adaptive else []
    return shlex.join(words)


@dataclass(frozen=True)
class _Answering:
    """How one domain's test items are answered: in this process with `lm`, or in `workers` processes."""

    task: Domain
    run_dir: Path
    lm: Any
    model: str | None
    dtype: str | None
    workers: int
    options: dict[str, Any]
    console: Console


def _answer_every_item(group: list[Configuration], how: _Answering) -> int:
    """`group` on every test item; the number of new answers."""
    summary = (evaluate_in_workers(how.run_dir, group, how.task.name, workers=how.workers, model=how.model,
                                   dtype=how.dtype, **how.options) if how.workers > 1 else
               evaluate_run_dir(how.run_dir, group, how.task, lm=how.lm, show_progress=True, **how.options))
    copied = sum(summary.new_cells[name] for name in summary.copied_from)
    how.console.print(f"{len(group)} respondents answered every test item: {sum(summary.new_cells.values())} new "
                      f"answers" + (f" ({copied} of them taken from an identical respondent: "
                                    + ", ".join(f"{name} = {origin}" for name, origin in summary.copied_from.items())
                                    + ")" if summary.copied_from else "")
                      + f", {summary.parse_failures} unparseable outputs", soft_wrap=True)
    return sum(summary.new_cells.values())


def _compare_adaptively(tested: list[Configuration], how: _Answering) -> int:
    """`tested` on the items adaptive tests pick, or on every item where the pool is too small for that
    (said, with the reason); the number of new answers."""
    task, options, console = how.task, how.options, how.console
    store = ResponseStore(how.run_dir, create=True)
    answered = task.name in store.domains() and bool(store.respondents(task.name))
    matrix = store.matrix(task.name, "test") if answered else None
    if matrix is not None:  # runs that already answered every item (an earlier full comparison) stay as they are
        done = {c.name for c, complete in zip(matrix.respondents, matrix.complete()) if complete}
        tested = [c for c in tested if c.name not in done]
        if not tested:
            return 0
    names = [c.name for c in tested]
    plan = None
    if options["limit"] is not None:
        reason = f"the preset answers only the first {options['limit']} test items"
    elif matrix is None:
        reason = "no respondent besides the comparison configurations answered the test split (calibration)"
    else:
        plan = adaptive_plan(matrix, names)
        reason = plan.reason
    if reason or plan is None:
        console.print(f"[bold]Not adaptive[/bold]: {reason}; the {len(tested)} comparison configurations answer "
                      "every item.", soft_wrap=True)
        return _answer_every_item(tested, how)
    console.print(f"Adaptive ({plan.method}): {len(tested)} comparison configurations, pool of "
                  f"{len(calibration_rows(matrix, names))} respondents; replayed on the pool, "
                  + ", ".join(f"{m} missed by {100 * e:.1f}" for m, e in plan.errors.items())
                  + f" points (random items: {100 * (plan.random_items_error or 0):.1f})", soft_wrap=True)
    results = (adaptive_in_workers(how.run_dir, tested, task.name, workers=how.workers, model=how.model,
                                   dtype=how.dtype, command=options["command"], plan=plan) if how.workers > 1 else
               adaptive_evaluate(tested, task, lm=how.lm, store=store, command=options["command"], plan=plan))
    truth = Truth.of(matrix)
    floor = f"; majority floor {100 * truth.floors.majority:.1f}%" if truth else ""
    for result in results:
        e = result.estimate
        console.print(f"{result.name}: {100 * e.accuracy:.1f}% ± {100 * e.accuracy_standard_error:.1f} from "
                      f"{len(e.items)} of {e.pool_items} items ({e.stop_reason}{floor})", soft_wrap=True)
    return sum(result.new_answers for result in results)


def compare(domains: Sequence[str], *, preset: Any = "quick", seeds: Sequence[int] = (0,), model: str | None = None,
            dtype: str | None = None,
            run_dir: str | Path = "ax_runs", reflection_lm: str | None = None, lm: Any = None, context: bool = True,
            ablate_context: bool = False, console: Console | None = None, bootstrap: int = 2000,
            power_simulations: int = 200, workers: int = 1, adaptive: bool = False) -> Any:
    """Optimize, evaluate and report `domains`; returns the written report's files.

    `context`: every configuration answers with an ACE playbook adapted on the train examples by
    its own program and adapter (False: none, the optimized programs alone). `ablate_context`: also
    answer with each configuration without its playbook, so the report measures playbook on vs off.
    `workers`: optimize the (domain, seed) pairs in that many processes at once (one GPU each where
    there are GPUs), then answer each domain's test items in that many processes (the configurations
    split by seed); the report is written here. `adaptive`: every other respondent answers the whole test
    split first; then each comparison configuration answers only the items an adaptive test picks and
    the report gives its forecast accuracy with its error (no pairwise tests or synergy for those runs).
    With too few items or calibration respondents it answers every item instead and says why.
    """
    if not domains:
        raise AxError("compare needs at least one domain (see `ax domains list`)")
    if workers > 1 and lm is not None:
        raise AxError("workers load one model per process from `model`; pass model=..., not lm=...")
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    chosen = get_preset(preset) if isinstance(preset, str) else preset  # a name or an ax.optimizers Preset
    tasks = [get_domain(name) for name in domains]  # unknown names and bad settings fail before any work
    try:
        settings = ReportSettings(n_bootstrap=bootstrap, power_simulations=power_simulations,
                                  domains=[t.name for t in tasks])
    except ValidationError as error:
        raise AxError(f"compare: {error}") from None
    command = compare_command(domains, preset_argument(chosen, run_dir), seeds, model, run_dir, reflection_lm, context,
                              ablate_context, dtype, adaptive)
    started = time.perf_counter()
    if workers > 1:
        console.rule(f"[bold]optimize[/bold]: {len(tasks) * len(seeds)} (domain, seed) jobs in {workers} workers")
        optimize_in_workers([(task.name, seed) for task in tasks for seed in seeds], workers=workers, console=console,
                            preset=chosen, run_dir=run_dir, model=model, dtype=dtype, reflection_lm=reflection_lm,
                            context=context, ablate_context=ablate_context)
    if lm is None and workers == 1:
        console.print(f"Loading {model or 'the embedded model'} ...")
        lm = ax.LM(model, dtype=dtype)
    for task in tasks:
        domain_started = time.perf_counter()
        if workers == 1:
            console.rule(f"[bold]{task.name}[/bold]: optimize")
            optimize(task, seeds=seeds, preset=chosen, run_dir=run_dir, lm=lm, reflection_lm=reflection_lm,
                     context=context, ablate_context=ablate_context, console=console)
        console.rule(f"[bold]{task.name}[/bold]: evaluate on the test split")
        respondents = load_configurations(run_dir / CONFIGURATIONS_FILE).select(task.name)
        options = dict(split="test", limit=chosen.test_items, num_threads=chosen.eval_threads, command=command)
        tested = [c for c in respondents if c.role == "comparison"] if adaptive else []
        how = _Answering(task=task, run_dir=run_dir, lm=lm, model=model, dtype=dtype, workers=workers,
                         options=options, console=console)
        full = [c for c in respondents if c not in tested]
        new_answers = _answer_every_item(full, how) if full else 0
        if tested:
            new_answers += _compare_adaptively(tested, how)
        console.print(f"{task.name} took {time.perf_counter() - domain_started:.0f} s ({new_answers} new answers)",
                      soft_wrap=True)
    console.rule("[bold]report[/bold]")
    out = run_dir / REPORT_DIR
    files = write_report(build_report(run_dir, settings, out=out), out)
    console.print(f"Done in {time.perf_counter() - started:.0f} s. Report: {files.markdown} and {files.html}",
                  soft_wrap=True)
    return files
