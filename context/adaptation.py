"""Offline and online adaptation: run the program, score it, reflect, curate, merge, refine.

Offline: epochs over a train split. Online: after each task whose label or feedback arrives.
Both checkpoint (epoch, position, playbook version, cost) next to the playbook after every
task, so a rerun after a crash or Ctrl-C continues with the first unfinished task; a task
whose playbook update was saved but whose checkpoint was not is recognized from the playbook
history and not redone. Cost (LM calls, tokens, seconds) is kept per role, because adaptation
latency and cost are what ACE claims to cut and what a user pays.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel

from ax.client.cost import Cost, measured
from ax.context.assembler import AssembledContext, WithContext
from ax.context.deltas import AddOp, CountOp, DeltaOp, apply_deltas
from ax.context.playbook import Playbook
from ax.context.refine import Refiner
from ax.context.roles import Curator, Reflector, cited_bullet_ids
from ax.context.store import PlaybookStore, read_model, write_model
from ax.errors import AxError

Metric = Callable[..., Any]
"""`metric(example, prediction)` -> a number/bool, or an object with `score` and `feedback`
(the `dspy.Prediction(score=, feedback=)` that GEPA metrics return)."""


class AdaptationState(BaseModel):
    """The checkpoint: where a run stands. `position` is the next task within the epoch
    (offline, in the epoch's shuffled order) or within the stream (online)."""

    mode: Literal["offline", "online"]
    data_fingerprint: str | None = None
    epoch: int = 0
    position: int = 0
    playbook_version: int = 0
    scores: list[list[float]] = []  # per epoch (online: one list), the metric score of each task
    cost: dict[str, Cost] = {}


class Step(BaseModel):
    """One task's outcome: its score and what it changed in the playbook."""

    source: str
    score: float | None = None  # None: no label/feedback, nothing learned
    output: dict[str, Any] = {}
    applied: int = 0
    skipped: list[str] = []
    malformed: list[str] = []  # reflector tag lines and curator lines that did not parse
    playbook_version: int


class AdaptationReport(BaseModel):
    domain: str
    playbook_version: int
    bullets: int
    epochs_done: int
    processed: int  # tasks run by this call
    resumed_from: int  # tasks already done by earlier calls in the current epoch
    mean_score_per_epoch: list[float]
    cost: dict[str, Cost]
    total_cost: Cost


class PlaybookLearner:
    """Evolves the playbook behind `program.assembler` from metric feedback.

    `lm` runs the default Reflector and Curator (default: the LM configured in dspy; pass a
    stronger `dspy.LM` or litellm model string to teach a small program model)."""

    def __init__(self, program: WithContext, metric: Metric, *, store: PlaybookStore | None = None,
                 lm: dspy.BaseLM | str | None = None, reflector: Reflector | None = None,
                 curator: Curator | None = None, refiner: Refiner | None = None):
        if program.assembler.playbook is None:
            raise AxError("the program's ContextAssembler has no playbook to adapt; "
                          "give it one, e.g. PlaybookStore().load(domain)")
        self.program = program
        self.metric = metric
        self.store = store or PlaybookStore()
        self.reflector = reflector or Reflector(lm)
        self.curator = curator or Curator(lm)
        self.refiner = refiner or Refiner()
        self.cost: dict[str, Cost] = {}  # per role, the checkpoint's (AdaptationState.cost)

    @property
    def playbook(self) -> Playbook:
        return self.program.assembler.playbook

    def offline(self, trainset: list[dspy.Example], *, epochs: int = 1, shuffle: bool = True, seed: int = 0,
                restart: bool = False) -> AdaptationReport:
        """Run `epochs` epochs over `trainset`, continuing from the checkpoint unless `restart`."""
        fingerprint = _fingerprint(trainset)
        state = self._load_state("offline", restart)
        if state.data_fingerprint not in (None, fingerprint):
            raise AxError(f"{self._state_path('offline')} was made with a different train set; "
                          "pass restart=True to start over (the playbook is kept)")
        state.data_fingerprint = fingerprint
        resumed_from, processed = state.position, 0
        while state.epoch < epochs:
            order = list(range(len(trainset)))
            if shuffle:
                random.Random(seed + state.epoch).shuffle(order)
            while len(state.scores) <= state.epoch:
                state.scores.append([])
            while state.position < len(order):
                index = order[state.position]
                source = f"offline epoch {state.epoch} item {index}"
                if not self._already_applied(state, source):
                    step = self.step(trainset[index], source=source)
                    state.scores[state.epoch].append(step.score or 0.0)
                    processed += 1
                state.position += 1
                self._checkpoint(state)
            state.epoch, state.position = state.epoch + 1, 0
            self._checkpoint(state)
        return AdaptationReport(
            domain=self.playbook.domain, playbook_version=self.playbook.version, bullets=len(self.playbook.bullets),
            epochs_done=state.epoch, processed=processed, resumed_from=resumed_from,
            mean_score_per_epoch=[sum(s) / len(s) if s else 0.0 for s in state.scores],
            cost=state.cost, total_cost=sum(state.cost.values(), Cost()),
        )

    def online(self, stream: Iterable[dspy.Example], *, restart: bool = False) -> Iterator[Step]:
        """Predict each task in turn with the current playbook, learning from those that carry
        labels; tasks the checkpoint says were done are skipped (not re-predicted)."""
        state = self._load_state("online", restart)
        if not state.scores:
            state.scores.append([])
        for position, example in enumerate(stream):
            if position < state.position:
                continue
            source = f"online item {position}"
            step = None if self._already_applied(state, source) else self.step(example, source=source)
            if step is not None and step.score is not None:
                state.scores[0].append(step.score)
            state.position = position + 1
            self._checkpoint(state)  # before yielding: the caller may stop consuming at any step
            if step is not None:
                yield step

    def step(self, example: dspy.Example, *, source: str) -> Step:
        """Predict with the current playbook, then learn if the example has labels. An answer
        the adapter cannot parse (common with small models) scores 0 and teaches nothing."""
        inputs = _inputs(example)
        generators = [dspy.settings.lm, *(predictor.lm for predictor in self.program.predictors())]
        with measured(self.cost, "generator", generators):
            try:
                prediction, assembled = self.program.run(**inputs)
            except dspy.AdapterParseError as error:
                return Step(source=source, score=0.0, malformed=[str(error)], playbook_version=self.playbook.version)
        if not example.labels():
            return Step(source=source, output=prediction.toDict(), playbook_version=self.playbook.version)
        return self.learn(example, prediction, assembled, source=source)

    def learn(self, example: dspy.Example, prediction: dspy.Prediction, assembled: AssembledContext | None = None,
              *, source: str) -> Step:
        """Score `prediction`, reflect, curate, merge, refine and save: one ACE update.

        The bullets judged are those the output cites among those shown, else all shown;
        without `assembled` (feedback arriving after the fact) only cited bullets are judged.
        When the roles' answers are unusable (see `_uncurated_lesson`) the lesson is added as is."""
        score, feedback = _score(self.metric(example, prediction))
        shown = assembled.bullet_ids if assembled else []
        cited = cited_bullet_ids(prediction, set(shown) if assembled else {b.id for b in self.playbook.bullets})
        judged_ids = set(cited or shown)
        task_input = _fields_text(_inputs(example))
        with measured(self.cost, "reflector", _role_lm(self.reflector)):
            reflection = self.reflector(
                task_input=task_input, program_output=_fields_text(prediction.toDict()),
                feedback=f"score: {score}\ngold: {_fields_text(example.labels().toDict())}\nfeedback: {feedback}",
                bullets=[b for b in self.playbook.bullets if b.id in judged_ids],
            )
        operations: list[DeltaOp] = [
            CountOp(bullet_id=i, helpful=int(tag == "helpful"), harmful=int(tag == "harmful"))
            for i, tag in reflection.tags.items() if tag != "neutral"
        ]
        malformed = list(reflection.malformed)
        curation = None
        if reflection.diagnosis or reflection.key_insight:
            with measured(self.cost, "curator", _role_lm(self.curator)):
                curation = self.curator(playbook=self.playbook, task_input=task_input,
                                        diagnosis=reflection.diagnosis, key_insight=reflection.key_insight)
            operations.extend(curation.operations)
            malformed.extend(curation.malformed)
        if curation is None or (not curation.operations and curation.malformed):
            operations.extend(_uncurated_lesson(reflection.key_insight, score, feedback))
        report = apply_deltas(self.playbook, operations, source=source)
        self.refiner(self.playbook, source=f"refine after {source}")
        self.store.save(self.playbook)
        return Step(source=source, score=score, output=prediction.toDict(), applied=report.applied,
                    skipped=report.skipped, malformed=malformed, playbook_version=self.playbook.version)

    def _already_applied(self, state: AdaptationState, source: str) -> bool:
        """True when the saved playbook holds this task's update although the checkpoint does
        not (the run stopped between saving the playbook and saving the checkpoint)."""
        return any(entry.source in (source, f"refine after {source}")
                   for entry in self.playbook.history if entry.version > state.playbook_version)

    def _state_path(self, mode: str) -> Path:
        return self.store.domain_dir(self.playbook.domain) / f"adaptation-{mode}.json"

    def _load_state(self, mode: Literal["offline", "online"], restart: bool) -> AdaptationState:
        path = self._state_path(mode)
        if path.is_file() and not restart:
            state = read_model(path, AdaptationState)
        else:
            state = AdaptationState(mode=mode, playbook_version=self.playbook.version)
        self.cost = state.cost
        return state

    def _checkpoint(self, state: AdaptationState) -> None:
        state.playbook_version = self.playbook.version
        write_model(self._state_path(state.mode), state)


def _role_lm(role: Any) -> dspy.BaseLM | None:
    """The LM a Reflector or Curator calls: its own, else the one configured in dspy."""
    return getattr(role, "lm", None) or dspy.settings.lm


def _inputs(example: dspy.Example) -> dict[str, Any]:
    try:
        return dict(example.inputs())
    except ValueError as error:
        raise AxError("adaptation examples need their input fields marked: example.with_inputs(...)") from error


def _fields_text(fields: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in fields.items())


def _uncurated_lesson(key_insight: str, score: float, feedback: str) -> list[DeltaOp]:
    """The lesson kept when the reflection was unusable or the curator wrote no parseable line
    (a deliberate NONE is respected): the reflector's key insight if it gave one, else, on a
    failed task, the metric's feedback (ax metrics name the expected answer and the cue that
    decides it). Without this a model too small to follow the roles' formats, like the
    embedded SmolLM2-135M, never adds a single bullet however long it adapts."""
    if key_insight.strip():
        return [AddOp(section="strategies", content=key_insight)]
    if score < 1 and feedback.strip():
        return [AddOp(section="pitfalls", content=feedback)]
    return []


def _score(result: Any) -> tuple[float, str]:
    """A metric result as (score, feedback text)."""
    if hasattr(result, "score"):
        return float(result.score), str(getattr(result, "feedback", "") or "")
    return float(result), ""


def _fingerprint(trainset: list[dspy.Example]) -> str:
    payload = json.dumps([example.toDict() for example in trainset], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
