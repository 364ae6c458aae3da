"""Run configurations over a domain's items and keep every answer in the response store.

All missing (respondent, item) cells of all configurations go through one pool of DSPy
threads, so the ax client batches calls across items and across adapters (mixed-adapter
batches), and its response cache answers repeats. Cells already in the store are skipped, so
re-running the same command costs no model call; the store is rewritten as answers come in, at
most every ``checkpoint_seconds``, so a killed run keeps what it finished (an agent's answer can
take seconds, so a count of cells would leave minutes unsaved). A respondent identical to another (the
same identity: program text, adapter weights, playbook, model and settings) takes that one's cells
instead of answering again; the report flags it `identical_to`. `evaluate_in_workers` splits the
configurations over processes, each with its own model: one Python process cannot keep a GPU busy.

A metric failure to parse the model's output (``AdapterParseError``) is the model's fault: the
cell is stored as wrong with the reason. Any other exception (a crashed backend, a missing
file) is not an answer: those cells stay missing, and the run ends with an AxError naming the
first failure once the finished cells are saved.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError
from dspy.utils.parallelizer import ParallelExecutor
from pydantic import BaseModel

from ax.adapter_store import adapter_fingerprint
from ax.client import LM
from ax.client.client import AxLM
from ax.configuration import Configuration
from ax.errors import AxError
from ax.evals.configuration import file_digest
from ax.evals.matrix_store import CORRECT_AT, Cell, RespondentRecord, ResponseStore, TaskInfo, item_record
from ax.model import dtype_change
from ax.programs.domain import Domain
from ax.programs.floors import label_choices
from ax.programs.metrics import score_of, step_scores
from ax.programs.registry import get_domain
from ax.versions import package_versions
from ax.workers import check_findable, run_in_workers

SPLITS = ("train", "dev", "test")


def domain_items(domain: Domain, split: str = "test", limit: int | None = None) -> list[dspy.Example]:
    """The items of one split of ``domain`` (an ``ax.programs.Domain``), the first ``limit`` of them."""
    if split not in SPLITS:
        raise AxError(f"split = {split!r}: choose one of {', '.join(SPLITS)}")
    items = list(getattr(domain.splits(), split))
    if limit is not None:
        if limit < 1:
            raise AxError(f"limit = {limit!r}: must be at least 1")
        items = items[:limit]
    if not items:
        raise AxError(f"domain {domain.name!r} has no {split} items")
    return items


def task_info(domain: Domain) -> TaskInfo:
    """The domain's task kind, gold fields and (classification) label set, as the response store keeps them."""
    labels = None
    if domain.task == "classification":
        field = domain.labels()[0]
        labels = list(label_choices(domain) or sorted({str(e[field]) for e in domain.examples()}))
    return TaskInfo(task=domain.task, label_fields=list(domain.labels()), labels=labels)


@dataclass
class PreparedRespondent:
    """A configuration made runnable: its program, the LM that answers for it, and its stored record."""

    configuration: Configuration
    program: dspy.Module
    lm: dspy.BaseLM
    record: RespondentRecord


def _model_identity(lm: dspy.BaseLM) -> tuple[str, str, dict[str, Any]]:
    """(model name, base-weights fingerprint, decoding settings) of the LM that answers."""
    if isinstance(lm, AxLM):
        name, fingerprint = lm.client.model_name, lm.client.answer_fingerprint
    else:
        name, fingerprint = lm.model, f"model:{lm.model}"
    settings = json.loads(json.dumps(dict(getattr(lm, "kwargs", {}) or {}), default=str))
    return name, fingerprint, settings


def prepare(configuration: Configuration, domain: Domain, lm: dspy.BaseLM, store: ResponseStore,
            command: str | None = None) -> PreparedRespondent:
    """Build the program and LM of ``configuration`` and find (or start) its record in ``store``.

    The record's identity hashes the program file, instruction overrides, adapter weights (each
    predictor's, for per-predictor adapters), playbook file, base model fingerprint and decoding
    settings; a stored record of the same name with another identity is refused.
    """
    if configuration.domain != domain.name:
        raise AxError(f"configuration {configuration.name!r} belongs to domain {configuration.domain!r}, "
                      f"not {domain.name!r}")
    program, answering_lm = configuration.build(domain, lm)
    adapter_fp = None if configuration.adapter is None else adapter_fingerprint(configuration.adapter)
    predictor_fps = {name: adapter_fingerprint(path) for name, path in configuration.predictor_adapters.items()}
    adapters = predictor_fps or adapter_fp
    model, model_fp, settings = _model_identity(lm)
    identity = hashlib.sha256(json.dumps({
        "domain": domain.name, "program": file_digest(configuration.program),
        "instructions": configuration.instructions, "adapter": adapters,
        "playbook": file_digest(configuration.playbook), "model": model_fp, "settings": settings,
    }, sort_keys=True).encode()).hexdigest()[:16]
    stored = store.read(domain.name, configuration.name)
    if stored is not None and stored.identity != identity:
        raise AxError(f"{store.path(domain.name, configuration.name)} holds answers of another configuration named "
                      f"{configuration.name!r} (different program, adapter, playbook, model or settings); "
                      "give this one a new name or delete that file to re-evaluate it."
                      f"{dtype_change(stored.model_fingerprint, model_fp)}")
    record = stored or RespondentRecord(configuration=configuration, identity=identity, model=model,
                                        model_fingerprint=model_fp, adapter_fingerprint=adapter_fp,
                                        predictor_adapter_fingerprints=predictor_fps,
                                        lm_settings=settings, versions=package_versions())
    record = record.model_copy(update={"configuration": configuration})
    if command and command not in record.commands:
        record = record.model_copy(update={"commands": [*record.commands, command]})
    return PreparedRespondent(configuration, program, answering_lm, record)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def answer(respondent: PreparedRespondent, example: dspy.Example, metric: Callable[..., Any]) -> Cell:
    """Run the respondent's program on one item and score it; non-parse errors propagate."""

    with dspy.context(lm=respondent.lm):
        try:
            prediction = respondent.program(**example.inputs())
        except AdapterParseError as error:
            return Cell(item=str(example.id), score=0.0, correct=False, error=str(error)[:500])
    result = metric(example, prediction)
    score = score_of(result)
    return Cell(item=str(example.id), score=score, correct=score >= CORRECT_AT,
                output=_jsonable(prediction.toDict()), feedback=str(getattr(result, "feedback", "") or ""),
                steps=step_scores(metric, example, prediction))


class RunSummary(BaseModel):
    """What one evaluation call did: new and already-stored cells per respondent."""

    domain: str
    items: int
    new_cells: dict[str, int]
    stored_cells: dict[str, int]
    parse_failures: int
    copied_from: dict[str, str] = {}  # respondent -> the identical one whose answers it took instead of answering


def evaluate_configurations(configurations: list[Configuration], domain: Domain, *, lm: dspy.BaseLM,
                            store: ResponseStore, items: list[dspy.Example], num_threads: int = 16,
                            checkpoint_seconds: float = 30.0, command: str | None = None,
                            show_progress: bool = False, split: str | None = None) -> RunSummary:
    """Answer every (configuration, item) cell not yet in ``store``; see the module docstring.

    ``split`` names the split ``items`` come from, recorded with each item."""
    if checkpoint_seconds < 0 or num_threads < 1:
        raise AxError(f"checkpoint_seconds = {checkpoint_seconds!r}, num_threads = {num_threads!r}: "
                      "need checkpoint_seconds >= 0 and num_threads >= 1")
    names = [c.name for c in configurations]
    if len(set(names)) != len(names):
        raise AxError(f"configuration names must be unique (each is one file of the store), got {names}")
    store.register_items(domain.name, [item_record(example, labels=domain.labels(), split=split) for example in items],
                         task_info(domain))
    respondents = [prepare(c, domain, lm, store, command) for c in configurations]
    stored = {r.configuration.name: len(r.record.cells) for r in respondents}
    answered = [respondent.record.answered() for respondent in respondents]
    # A respondent with another's identity (the same program text, adapter weights, playbook, model and
    # settings, as when GEPA changed nothing) takes that one's answers: the report names it identical.
    first: dict[str, int] = {}
    source = [first.setdefault(respondent.record.identity, index) for index, respondent in enumerate(respondents)]
    # Item-major: the configurations' calls on one item are in flight together, so one mixed-adapter
    # batch answers several configurations.
    tasks = [(index, example) for example in items for index in range(len(respondents))
             if source[index] == index and str(example.id) not in answered[index]]

    base = [respondent.record.cells for respondent in respondents]
    new: list[dict[int, Cell]] = [{} for _ in respondents]  # task position -> cell, stored in item order
    lock = threading.Lock()
    last_save = time.monotonic()

    def save(indices: Iterable[int]) -> None:
        for index in indices:
            cells = [*base[index], *(new[index][position] for position in sorted(new[index]))]
            respondents[index].record = respondents[index].record.model_copy(update={"cells": cells})
            store.write(respondents[index].record)

    def run(task: tuple[int, tuple[int, dspy.Example]]) -> Cell | BaseException:
        nonlocal last_save
        position, (index, example) = task
        try:
            cell = answer(respondents[index], example, domain.metric)
        except Exception as error:  # kept and reported after the finished cells are saved
            return error
        with lock:
            new[index][position] = cell
            if time.monotonic() - last_save >= checkpoint_seconds:
                save(index for index in range(len(respondents)) if new[index])
                last_save = time.monotonic()
        return cell

    executor = ParallelExecutor(num_threads=num_threads, disable_progress_bar=not show_progress,
                                max_errors=len(tasks) + 1)
    results = executor.execute(run, list(enumerate(tasks))) if tasks else []
    # ParallelExecutor keeps a returned exception in exceptions_map and puts None in the results.
    failures = [(respondents[index].configuration.name, str(example.id), executor.exceptions_map.get(position, result))
                for position, ((index, example), result) in enumerate(zip(tasks, results))
                if not isinstance(result, Cell)]
    for index, origin in enumerate(source):
        if origin != index:
            cells = {cell.item: cell for cell in [*base[origin], *new[origin].values()]}
            new[index] = {position: cells[str(example.id)] for position, example in enumerate(items)
                          if str(example.id) not in answered[index] and str(example.id) in cells}
    save(range(len(respondents)))  # also records new commands of respondents with nothing left to answer
    if failures:
        name, item, error = failures[0]
        raise AxError(f"{len(failures)} of {len(tasks)} cells failed and were not stored (re-run to retry them); "
                      f"first: {name} on {item}: {type(error).__name__}: {error}")
    return RunSummary(
        domain=domain.name, items=len(items),
        new_cells={r.configuration.name: len(r.record.cells) - stored[r.configuration.name] for r in respondents},
        stored_cells=stored,
        parse_failures=sum(1 for index, r in enumerate(respondents) if source[index] == index
                           for c in r.record.cells[stored[r.configuration.name]:] if c.error),
        copied_from={r.configuration.name: respondents[origin].configuration.name
                     for r, origin in zip(respondents, source) if r is not respondents[origin]},
    )


def evaluate_run_dir(run_dir: str | Path, configurations: list[Configuration], domain: Domain, *, lm: dspy.BaseLM,
                     split: str = "test", limit: int | None = None, **options: Any) -> RunSummary:
    """`evaluate_configurations` over a domain split, storing into ``run_dir/responses``."""
    store = ResponseStore(run_dir, create=True)
    return evaluate_configurations(configurations, domain, lm=lm, store=store,
                                   items=domain_items(domain, split, limit), split=split, **options)


def seed_shards(configurations: list[Configuration], domain: str, workers: int) -> list[list[Configuration]]:
    """The configurations sorted by seed, then name, cut into at most `workers` equal runs, so one process mixes
    few adapters; refuses what a new process could not run (an unsaved domain, nothing to answer with)."""
    check_findable([domain])
    if not configurations:
        raise AxError(f"workers: no configurations of {domain!r} to answer with")
    ordered = sorted(configurations, key=lambda c: (c.seed, c.name))
    size = -(-len(ordered) // workers)
    return [ordered[start:start + size] for start in range(0, len(ordered), size)]


def _evaluate_shard(index: int, *, shards: list[list[Configuration]], run_dir: Path, domain: str, model: str | None,
                    dtype: str | None, options: dict[str, Any]) -> RunSummary:
    return evaluate_run_dir(run_dir, shards[index], get_domain(domain), lm=LM(model, dtype=dtype), **options)


def evaluate_in_workers(run_dir: str | Path, configurations: list[Configuration], domain: str, *, workers: int,
                        model: str | None = None, dtype: str | None = None, **options: Any) -> RunSummary:
    """`evaluate_run_dir` with the configurations split into `workers` shards, each answered in its own process.

    Shards follow seeds (configurations sorted by seed, then name, cut into equal runs), so one process
    mixes few adapters. Each process loads `model` (default: the embedded model) in `dtype`; `options` are
    evaluate_run_dir's other than `lm`. The store ends as one process would leave it.
    """
    shards = seed_shards(configurations, domain, workers)
    summaries = run_in_workers(partial(_evaluate_shard, shards=shards, run_dir=Path(run_dir), domain=domain,
                                       model=model, dtype=dtype, options=options),
                               [(index,) for index in range(len(shards))], workers=workers)
    return RunSummary(domain=domain, items=summaries[0].items,
                      new_cells={name: n for s in summaries for name, n in s.new_cells.items()},
                      stored_cells={name: n for s in summaries for name, n in s.stored_cells.items()},
                      parse_failures=sum(s.parse_failures for s in summaries),
                      copied_from={name: origin for s in summaries for name, origin in s.copied_from.items()})
