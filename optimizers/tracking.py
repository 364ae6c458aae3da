"""A GEPA callback that keeps the run directory's human-readable record and shows progress.

GEPA's own `gepa_state.bin` is what a resumed run continues from; this callback writes beside it
what people read: `proposals.json` (each iteration's parent, proposed instructions and outcome)
and `frontier.json` (every candidate with its per-item validation scores and whether it is on
the Pareto frontier). Both are rewritten atomically at each iteration boundary, from the same
state GEPA just saved, so they never disagree with the checkpoint a resume starts from; so is
whatever `on_checkpoint` writes (run_gepa: the cost so far).

`predictor_changes` reads a frontier for what each predictor gained: GEPA proposes for one
predictor (component) at a time, so each step of the best candidate's lineage is one predictor's.

It also drives a rich progress bar (rollouts, best validation score, accepted proposals) and
prints a warning when `patience` iterations in a row accepted nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ax.optimizers.run_files import read_json, write_json
from ax.optimizers.stall import IterationRecord, streak_warning

PROPOSALS_FILE = "proposals.json"
FRONTIER_FILE = "frontier.json"


class ProposalLog(BaseModel):
    records: list[IterationRecord] = Field(default_factory=list)


class FrontierCandidate(BaseModel):
    index: int
    instructions: dict[str, str]
    parents: list[int | None]
    val_score: float
    val_scores: dict[str, float]  # example id -> score
    on_frontier: bool
    discovered_at_metric_calls: int


class Frontier(BaseModel):
    """All candidates so far; `best` has the highest mean validation score."""

    iterations: int  # completed GEPA iterations
    metric_calls: int
    best: int
    candidates: list[FrontierCandidate]

    @property
    def pareto(self) -> list[FrontierCandidate]:
        return [c for c in self.candidates if c.on_frontier]


class PredictorChange(BaseModel):
    """One predictor's instruction from the seed candidate to the best, and the validation gain it brought."""

    name: str  # in the domain's own program
    component: str  # GEPA's name: "program.<name>" under a playbook wrapper (WithContext)
    changed: bool  # the best candidate's instruction differs from the seed's
    val_gain: float  # the lineage steps that changed it: child minus parent mean validation score, summed
    steps: int  # candidates on the lineage from the seed to the best that changed it


def lineage(frontier: Frontier, index: int) -> list[FrontierCandidate]:
    """The candidates from the seed to `index`, each the (first) parent of the next."""
    path = [frontier.candidates[index]]
    while path[-1].parents and path[-1].parents[0] is not None:
        path.append(frontier.candidates[path[-1].parents[0]])
    return path[::-1]


def predictor_changes(frontier: Frontier, best: int, names: Mapping[str, str] | None = None) -> list[PredictorChange]:
    """Each component's change from the seed to candidate `best`, with the validation gain attributed to it.

    Each step of the lineage gives its parent -> child score change to the components it changed
    (one for a reflective proposal; a merge splits it evenly among those it took from its second parent), so
    the gains add up to the best candidate's score minus the seed's. `names`: GEPA's component
    name -> the predictor's name in the domain's own program (default: the component name).
    """
    path = lineage(frontier, best)
    seed, top = path[0], path[-1]
    gains, steps = dict.fromkeys(seed.instructions, 0.0), dict.fromkeys(seed.instructions, 0)
    for parent, child in zip(path, path[1:]):
        changed = [c for c in seed.instructions if child.instructions.get(c) != parent.instructions.get(c)]
        for component in changed:
            gains[component] += (child.val_score - parent.val_score) / len(changed)
            steps[component] += 1
    names = names or {}
    return [PredictorChange(name=names.get(c, c), component=c, changed=top.instructions.get(c) != text,
                            val_gain=gains[c], steps=steps[c]) for c, text in seed.instructions.items()]


def frontier_from_state(state: Any, val_ids: list[str], iterations: int) -> Frontier:
    """A Frontier from a `gepa.core.state.GEPAState` (val positions mapped to example ids)."""
    on_front = {idx for front in state.program_at_pareto_front_valset.values() for idx in front}
    candidates = []
    for index, instructions in enumerate(state.program_candidates):
        scores = state.prog_candidate_val_subscores[index]
        candidates.append(FrontierCandidate(
            index=index, instructions=dict(instructions), parents=list(state.parent_program_for_candidate[index]),
            val_score=sum(scores.values()) / len(scores) if scores else 0.0,
            val_scores={val_ids[position]: float(score) for position, score in scores.items()},
            on_frontier=index in on_front,
            discovered_at_metric_calls=int(state.num_metric_calls_by_discovery[index]),
        ))
    best = max(range(len(candidates)), key=lambda i: (candidates[i].val_score, -i))
    return Frontier(iterations=iterations, metric_calls=state.total_num_evals, best=best, candidates=candidates)


class RunTracker:
    """GEPA callback (duck-typed: GEPA calls whichever `on_*` methods exist)."""

    def __init__(self, run_dir: Path, val_ids: list[str], *, total_calls: int, console: Console | None = None,
                 show_progress: bool = True, patience: int = 5, resumed_iteration: int = 0,
                 on_checkpoint: Callable[[Any], Any] | None = None):
        self.run_dir = Path(run_dir)
        self.on_checkpoint = on_checkpoint  # called with GEPA's state whenever the files are rewritten
        self.val_ids = val_ids
        self.console = console or Console(stderr=True)
        self.patience = patience
        self.records = self._load_records(resumed_iteration)
        self._state: Any = None
        self._current: IterationRecord | None = None
        self._progress = Progress(TextColumn("GEPA"), BarColumn(), MofNCompleteColumn(), TextColumn("rollouts"),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
                                  disable=not show_progress)
        self._task = self._progress.add_task("gepa", total=total_calls, status="")
        self._best = None

    # -- lifecycle ----------------------------------------------------------------------------

    def _load_records(self, resumed_iteration: int) -> list[IterationRecord]:
        """Records of iterations the checkpoint includes; later ones were cut off by the kill and will rerun."""
        path = self.run_dir / PROPOSALS_FILE
        if not resumed_iteration or not path.is_file():
            return []
        return [r for r in read_json(path, ProposalLog).records if r.iteration <= resumed_iteration]

    def __enter__(self) -> RunTracker:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    @property
    def accepted(self) -> int:
        return sum(r.outcome == "accepted" for r in self.records)

    def _refresh(self, metric_calls: int | None = None) -> None:
        best = f"best {self._best:.3f}" if self._best is not None else "best -"
        status = f"{best}  accepted {self.accepted}/{len(self.records)} iterations"
        self._progress.update(self._task, status=status, **({"completed": metric_calls} if metric_calls is not None else {}))

    def _write(self) -> None:
        write_json(self.run_dir / PROPOSALS_FILE, ProposalLog(records=self.records))
        if self._state is not None:
            frontier = frontier_from_state(self._state, self.val_ids, len(self.records))
            self._best = frontier.candidates[frontier.best].val_score
            write_json(self.run_dir / FRONTIER_FILE, frontier)
            if self.on_checkpoint is not None:
                self.on_checkpoint(self._state)

    # -- GEPA events --------------------------------------------------------------------------

    def on_iteration_start(self, event: dict) -> None:
        self._state = event["state"]
        self._write()  # GEPA saved its checkpoint just before this event
        self._current = IterationRecord(iteration=event["iteration"])
        self._refresh(self._state.total_num_evals)

    def on_candidate_selected(self, event: dict) -> None:
        if self._current is not None:
            self._current.parent = event["candidate_idx"]

    def on_evaluation_skipped(self, event: dict) -> None:
        if self._current is not None and event["reason"] == "all_scores_perfect":
            self._current.outcome = "perfect"

    def on_proposal_end(self, event: dict) -> None:
        if self._current is not None:
            self._current.proposed = dict(event["new_instructions"])

    def on_merge_attempted(self, event: dict) -> None:
        if self._current is not None:
            self._current.kind = "merge"
            self._current.proposed = dict(event["merged_candidate"])

    def on_candidate_accepted(self, event: dict) -> None:
        if self._current is not None:
            self._current.outcome, self._current.candidate = "accepted", event["new_candidate_idx"]
            self._current.subsample_after = event["new_score"]

    def on_candidate_rejected(self, event: dict) -> None:
        if self._current is not None:
            self._current.outcome = "rejected"
            self._current.subsample_before, self._current.subsample_after = event["old_score"], event["new_score"]
            self._current.note = event["reason"]

    def on_merge_rejected(self, event: dict) -> None:
        if self._current is not None:
            self._current.outcome, self._current.note = "rejected", event["reason"]

    def on_error(self, event: dict) -> None:
        if self._current is not None:
            self._current.outcome, self._current.note = "error", repr(event["exception"])

    def on_budget_updated(self, event: dict) -> None:
        self._refresh(event["metric_calls_used"])

    def on_iteration_end(self, event: dict) -> None:
        if self._current is None:
            return
        self.records.append(self._current)
        self._current = None
        self._write()
        self._refresh()
        warning = streak_warning(self.records, self.patience)
        if warning:
            self._progress.console.print(f"[yellow]{warning}[/yellow]", soft_wrap=True)

    def on_optimization_end(self, event: dict) -> None:
        self._state = event["final_state"]
        self._write()
        self._refresh(self._state.total_num_evals)
