"""One GEPA optimization through `dspy.GEPA`, in a run directory that survives kill -9.

dspy.GEPA hands its `log_dir` to the gepa engine as `run_dir`; the engine pickles its whole
state (every candidate, its per-item validation scores, the Pareto front, the budget spent,
the iteration counter and the adapter's RNG) to `gepa_state.bin` with an atomic rename at the
start of every iteration, and loads it when the directory already holds one. A rerun with the
same directory therefore continues at the iteration the killed run had reached, losing at most
the iteration in flight. ax adds around that:

- `run.json`, the run's identity (program, data, seed): a rerun with other data or another
  program refuses to mix with the old state instead of silently loading it;
- a resumed run scores the seed program on one validation example instead of all of them (the
  engine evaluates the seed before it notices the checkpoint, then throws the result away);
- `frontier.json`, `proposals.json`, `best_program.json`, `cost.json`, `outcome.json`, written
  atomically, and GEPA's own log lines in `gepa_log.txt`; `outcome.json` says which predictor's
  instruction changed and the validation gain attributed to each (`predictor_changes`);
- the budget explained before the run, one rich progress bar instead of GEPA's and DSPy's tqdm
  bars, and a stall report at the end.

Layout of a run directory: `gepa/` (the engine's files), then the files above.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dspy
from gepa.core.state import GEPAState
from gepa.strategies.eval_policy import FullEvaluationPolicy
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from ax.errors import AxError
from ax.optimizers.budget import AutoBudget, BudgetPlan, plan_budget, resolve_budget
from ax.client.cost import Cost, CostMeter
from ax.optimizers.proposer import GroundedProposer
from ax.optimizers.quiet import quiet_console
from ax.optimizers.reflection import instruction_proposer, is_local_reflection, resolve_reflection_lm
from ax.optimizers.run_files import own_program, read_json, save_program, write_json
from ax.optimizers.stall import StallReport, stall_report
from ax.optimizers.tracking import FRONTIER_FILE, Frontier, PredictorChange, RunTracker, predictor_changes

ENGINE_DIR = "gepa"
STATE_FILE = "gepa_state.bin"
IDENTITY_FILE = "run.json"
BEST_PROGRAM_FILE = "best_program.json"
COST_FILE = "cost.json"
OUTCOME_FILE = "outcome.json"
LOG_FILE = "gepa_log.txt"


class GepaSettings(BaseModel):
    """How GEPA runs; `budget` is a preset name (dspy.GEPA's auto formula) or a number of metric calls."""

    model_config = ConfigDict(extra="forbid")

    budget: AutoBudget | int = "light"
    reflection_lm: str | None = None  # a litellm model string; None: the task's own local model
    reflection_minibatch_size: int = Field(3, gt=0)
    num_threads: int = Field(4, gt=0)
    seed: int = 0
    candidate_selection: Literal["pareto", "current_best"] = "pareto"
    skip_perfect_score: bool = True
    use_merge: bool = False  # merges pay off with budgets of hundreds of calls, not the presets' dozens
    stall_patience: int = Field(5, gt=0)


class GepaOutcome(BaseModel):
    """What a finished (or resumed and finished) GEPA run produced."""

    best_program: Path
    # "grounded": ax's proposer (optimizers/proposer.py), for a local reflection model; "gepa": DSPy's
    # own, for a named one (and the proposer of every run recorded before this field existed)
    proposer: Literal["grounded", "gepa"] = "gepa"
    best_index: int
    best_val_score: float
    seed_val_score: float
    candidates: int
    pareto_candidates: int
    iterations: int
    resumed_from_iteration: int
    budget: BudgetPlan
    stall: StallReport
    cost: Cost
    predictors: list[PredictorChange] = Field(default_factory=list)  # empty in runs recorded before it existed

    def predictor_summary(self) -> str:
        """E.g. "instruction of classify changed (+0.12 validation), answer kept"; "" if nothing changed."""
        changed = [f"instruction of {p.name} changed ({p.val_gain:+.2f} validation)"
                   for p in self.predictors if p.changed]
        kept = [p.name for p in self.predictors if not p.changed]
        return ", ".join(changed + [f"{', '.join(kept)} kept"]) if changed and kept else ", ".join(changed)


class _ResumingPolicy(FullEvaluationPolicy):
    """Full validation evaluations, except a one-example seed evaluation when a checkpoint exists."""

    def __init__(self, engine_dir: Path):
        self.resuming = (engine_dir / STATE_FILE).is_file()

    def get_seed_eval_batch(self, loader: Any) -> list[Any]:
        ids = list(loader.all_ids())
        return ids[:1] if self.resuming else ids


def _identity(program: dspy.Module, trainset: list[dspy.Example], valset: list[dspy.Example],
              settings: GepaSettings) -> dict[str, Any]:
    """What must match for a run directory's checkpoint to be continued (the budget may grow)."""
    def ids(examples: list[dspy.Example]) -> str:
        keys = [str(e.get("id", json.dumps(e.toDict(), sort_keys=True, default=str))) for e in examples]
        return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]

    return {
        "instructions": {name: p.signature.instructions for name, p in program.named_predictors()},
        "train": ids(trainset), "val": ids(valset),
        **settings.model_dump(include={"seed", "reflection_minibatch_size", "candidate_selection", "use_merge"}),
    }


def _check_identity(run_dir: Path, identity: dict[str, Any]) -> int:
    """Iterations completed by an earlier run in `run_dir` (0 for a new run); AxError if it was another run."""
    path, engine_dir = run_dir / IDENTITY_FILE, run_dir / ENGINE_DIR
    if path.is_file() and (engine_dir / STATE_FILE).is_file():
        saved = json.loads(path.read_text())
        if saved != identity:
            changed = sorted(k for k in identity if saved.get(k) != identity[k])
            raise AxError(f"{run_dir} holds a GEPA run of another program or data (differs in: {', '.join(changed)}); "
                          "use a new run directory, or delete this one to start over")
        return GEPAState.load(str(engine_dir)).i + 1
    write_json(path, identity)
    return 0


def _own_names(program: dspy.Module) -> dict[str, str]:
    """GEPA's name of each predictor -> its name in the domain's own program (a playbook wrapper nests it)."""
    own = {id(predictor): name for name, predictor in own_program(program).named_predictors()}
    return {name: own.get(id(predictor), name) for name, predictor in program.named_predictors()}


def run_gepa(program: dspy.Module, *, trainset: list[dspy.Example], valset: list[dspy.Example],
             metric: Callable[..., Any], lm: dspy.BaseLM, settings: GepaSettings, run_dir: str | Path,
             reflection_lm: dspy.BaseLM | None = None, console: Console | None = None,
             show_progress: bool = True) -> tuple[dspy.Module, GepaOutcome]:
    """Evolve `program`'s instructions with GEPA on `lm`; resume if `run_dir` holds this run's checkpoint.

    `metric` is a GEPA feedback metric `(gold, pred, trace, pred_name, pred_trace)`; the best
    program (highest mean validation score) is returned and saved as `best_program.json`.
    A local reflection model (`resolve_reflection_lm(None, ...)`) proposes through ax's grounded
    proposer, a named one through DSPy's; `outcome.json` records which.
    """
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    engine_dir = run_dir / ENGINE_DIR
    engine_dir.mkdir(parents=True, exist_ok=True)
    resumed = _check_identity(run_dir, _identity(program, trainset, valset, settings))

    calls = resolve_budget(settings.budget, num_components=len(program.predictors()), valset_size=len(valset))
    plan = plan_budget(calls, trainset_size=len(trainset), valset_size=len(valset),
                       minibatch_size=settings.reflection_minibatch_size)
    console.print(plan.describe(), soft_wrap=True)
    if resumed:
        console.print(f"Resuming the GEPA run in {run_dir} after iteration {resumed}.", soft_wrap=True)

    reflection = reflection_lm.copy() if reflection_lm is not None else resolve_reflection_lm(settings.reflection_lm, lm)
    proposer = "grounded" if is_local_reflection(reflection) else "gepa"
    # Cost so far = earlier sessions' (cost.json as of their last checkpoint) + this session's. The
    # rollouts are GEPA's own count, saved with its state: summing sessions' counts double-counted
    # the iteration in flight when a kill fell between GEPA's checkpoint and cost.json.
    previous = read_json(run_dir / COST_FILE, Cost) if resumed and (run_dir / COST_FILE).is_file() else Cost()
    meter = CostMeter(lm, reflection)

    def cost_so_far(state: Any) -> Cost:
        cost = (previous + meter.stop()).model_copy(update={"rollouts": state.total_num_evals})
        write_json(run_dir / COST_FILE, cost)
        return cost

    val_ids = [str(e.get("id", i)) for i, e in enumerate(valset)]
    tracker = RunTracker(run_dir, val_ids, total_calls=calls, console=console, show_progress=show_progress,
                         patience=settings.stall_patience, resumed_iteration=resumed, on_checkpoint=cost_so_far)
    optimizer = dspy.GEPA(
        metric=metric, max_metric_calls=calls, reflection_lm=reflection,
        instruction_proposer=GroundedProposer() if proposer == "grounded" else instruction_proposer(),
        reflection_minibatch_size=settings.reflection_minibatch_size,
        candidate_selection_strategy=settings.candidate_selection, skip_perfect_score=settings.skip_perfect_score,
        # One predictor per proposal, in turn: every predictor is evolved, and each accepted
        # candidate's gain belongs to the one it changed (outcome.json's `predictors`).
        component_selector="round_robin",
        use_merge=settings.use_merge, num_threads=settings.num_threads, log_dir=str(engine_dir), track_stats=True,
        seed=settings.seed,
        gepa_kwargs={"callbacks": [tracker], "val_evaluation_policy": _ResumingPolicy(engine_dir)},
    )
    with dspy.context(lm=lm), quiet_console(run_dir / LOG_FILE), tracker:
        optimized = optimizer.compile(program, trainset=trainset, valset=valset)
    results = optimized.detailed_results
    del optimized.detailed_results  # run data lives in the run directory, not on the program
    cost = read_json(run_dir / COST_FILE, Cost)  # written by the tracker at the end of the run

    best = results.best_idx
    frontier = read_json(run_dir / FRONTIER_FILE, Frontier)  # written by the tracker at the end of the run
    stall = stall_report(tracker.records, proposer)
    outcome = GepaOutcome(
        best_program=save_program(optimized, run_dir / BEST_PROGRAM_FILE), proposer=proposer, best_index=best,
        best_val_score=results.val_aggregate_scores[best], seed_val_score=results.val_aggregate_scores[0],
        candidates=len(results.candidates),
        pareto_candidates=len({i for front in results.per_val_instance_best_candidates.values() for i in front}),
        iterations=len(tracker.records), resumed_from_iteration=resumed, budget=plan, stall=stall, cost=cost,
        predictors=predictor_changes(frontier, best, _own_names(program)),
    )
    write_json(run_dir / OUTCOME_FILE, outcome)
    console.print(f"GEPA ({proposer} proposer): best validation score {outcome.best_val_score:.3f} "
                  f"(seed {outcome.seed_val_score:.3f}), "
                  f"{stall.accepted} of {stall.proposals} proposals accepted, {outcome.candidates} candidates, "
                  f"{cost.rollouts} rollouts, {cost.wall_s:.0f}s", soft_wrap=True)
    if len(outcome.predictors) > 1 and outcome.predictor_summary():
        console.print(f"GEPA: {outcome.predictor_summary()}", soft_wrap=True)
    for reason in stall.reasons:
        console.print(f"[yellow]GEPA stalled: {reason}[/yellow]", soft_wrap=True)
    return optimized, outcome
