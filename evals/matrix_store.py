"""The response matrix on disk: every answer of every respondent, so reports never rerun a model.

Layout under a run directory::

    responses/<domain>/items.json          the items answered: id, content hash, rated difficulty
    responses/<domain>/<respondent>.json   one respondent: its configuration, what identifies it
                                           (model and adapter fingerprints, file hashes), and one
                                           cell per answered item (score, correct, raw output, feedback)

Each file is written whole to a temporary file and renamed into place, so a run killed at any
moment leaves the previous version or the new one. Writes merge into what is on disk under an
exclusive lock per domain (``responses/<domain>/.lock``), so processes evaluating into one run
directory at once lose no answer and no command. A respondent's ``identity`` hashes
everything that determines its answers; answers stored under another identity are never
mixed with new ones (a retrained adapter under the same name is refused, not silently merged).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ax.configuration import Configuration
from ax.errors import AxError
from ax.locking import locked
from ax.model import atomic_write_text

RESPONSES_DIR = "responses"
ITEMS_FILE = "items.json"
LOCK_FILE = ".lock"
CORRECT_AT = 1.0  # a metric score counts as correct from here up: partial credit is not a correct answer


class Cell(BaseModel):
    """One respondent's answer to one item."""

    model_config = ConfigDict(extra="forbid")

    item: str
    score: float
    correct: bool
    output: dict[str, Any] = Field(default_factory=dict)
    feedback: str = ""
    error: str | None = None  # the model's output could not be parsed: scored as wrong, reason kept
    steps: dict[str, float] = Field(default_factory=dict)  # multi-step programs: each step's score


class AdaptiveEstimate(BaseModel):
    """An adaptive test of the respondent on the test split: the accuracy on every item it forecasts
    from the items asked (``items``, in the order given), with its standard error.

    Of the split's ``pool_items``, ``calibrated_items`` could be calibrated; the rest, which every
    calibration respondent answered alike, count as answered alike again
    (``ax.evals.adaptive.over_every_item``). ``sampling_floor`` is the mean error the unasked items'
    own chance leaves at that ability (``ax.evals.adaptive.sampling_floor``); ``calibrated_on``
    counts the respondents that answered every item and calibrated the ``irt_model``. Answering
    every item later supersedes it.
    """

    model_config = ConfigDict(extra="forbid")

    method: str = "irt"  # or "sampled": random items, the pool's answers as predictor (ax.evals.sampled)
    items: list[str]
    pool_items: int
    calibrated_items: int
    theta: float | None = None  # IRT only
    theta_standard_error: float | None = None
    accuracy: float
    accuracy_standard_error: float
    sampling_floor: float
    stop_reason: str
    irt_model: str
    calibrated_on: int
    # mean |error| of the same tests replayed on the calibration respondents, each group calibrated
    # without it (None: not replayable): the pool's own evidence beside the model's SE
    held_out_error: float | None = None


class RespondentRecord(BaseModel):
    """Everything stored about one respondent in one domain."""

    model_config = ConfigDict(extra="forbid")

    configuration: Configuration
    identity: str
    model: str
    model_fingerprint: str
    adapter_fingerprint: str | None = None
    predictor_adapter_fingerprints: dict[str, str] = Field(default_factory=dict)  # one adapter per predictor
    lm_settings: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    commands: list[str] = Field(default_factory=list)
    cells: list[Cell] = Field(default_factory=list)
    adaptive: AdaptiveEstimate | None = None  # scored on the items an adaptive test picked

    def answered(self) -> set[str]:
        return {cell.item for cell in self.cells}


class ItemRecord(BaseModel):
    """An item of a domain: its id, a hash of its full content (inputs and gold), its rated difficulty,
    the split it came from and its gold answer (what floors and per-class metrics are computed from)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    digest: str
    difficulty: str | None = None
    split: str | None = None  # None in stores written before splits were recorded
    gold: dict[str, Any] | None = None


class TaskInfo(BaseModel):
    """What the report needs to know of the domain's task: its kind, gold fields and label set."""

    model_config = ConfigDict(extra="forbid")

    task: str
    label_fields: list[str]
    labels: list[str] | None = None  # the first label field's allowed values (classification)


class ItemSet(BaseModel):
    items: list[ItemRecord]
    task: TaskInfo | None = None  # None in stores written before it was recorded


def item_record(example: Any, *, labels: Sequence[str] = (), split: str | None = None) -> ItemRecord:
    """The ItemRecord of a ``dspy.Example`` with an ``id``; ``labels`` names its gold fields."""
    content = json.dumps(example.toDict(), sort_keys=True, default=str)
    difficulty = example.get("difficulty")
    return ItemRecord(id=str(example.id), digest=hashlib.sha256(content.encode()).hexdigest()[:16],
                      difficulty=None if difficulty is None else str(difficulty), split=split,
                      gold={name: json.loads(json.dumps(example[name], default=str)) for name in labels} or None)


@dataclass(frozen=True)
class ResponseMatrix:
    """A domain's respondents x items, 1/0/NaN (NaN: not answered), with the metric scores beside.

    ``identities`` hash what determines each respondent's answers (equal: the same program text,
    adapter weights, playbook and model); ``outputs`` are each respondent's raw outputs by item,
    ``gold`` the items' gold fields where the store recorded them.
    """

    domain: str
    respondents: tuple[Configuration, ...]
    item_ids: tuple[str, ...]
    correct: np.ndarray
    score: np.ndarray
    identities: tuple[str, ...] = ()
    outputs: tuple[dict[str, dict[str, Any]], ...] = ()
    steps: tuple[dict[str, dict[str, float]], ...] = ()  # per respondent: item -> each step's score
    gold: dict[str, dict[str, Any]] = field(default_factory=dict)
    task: TaskInfo | None = None
    adaptive: dict[str, AdaptiveEstimate] = field(default_factory=dict)  # respondent name -> its adaptive test

    def rows(self, names) -> np.ndarray:
        index = {c.name: i for i, c in enumerate(self.respondents)}
        return np.array([index[name] for name in names], dtype=int)

    def complete(self) -> np.ndarray:
        """Which respondents answered every item."""
        return ~np.isnan(self.correct).any(axis=1)

    def answered_by_all(self) -> ResponseMatrix:
        """The matrix over only the items every respondent answered (where a run stopped before the
        end of its split); adaptive estimates, made on the whole split, are left out."""
        keep = np.flatnonzero(~np.isnan(self.correct).any(axis=0))
        ids = tuple(self.item_ids[j] for j in keep)
        kept = set(ids)
        return replace(self, item_ids=ids, correct=self.correct[:, keep], score=self.score[:, keep],
                       outputs=tuple({i: o for i, o in out.items() if i in kept} for out in self.outputs),
                       steps=tuple({i: s for i, s in step.items() if i in kept} for step in self.steps),
                       gold={i: g for i, g in self.gold.items() if i in kept}, adaptive={})


def _read(path: Path, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as error:
        raise AxError(f"{path} is not a valid {model.__name__} file: {str(error).splitlines()[0]}; "
                      "restore it or delete it to re-evaluate") from None


def _write(path: Path, value: BaseModel) -> None:
    atomic_write_text(path, value.model_dump_json(indent=1) + "\n")


def merge_records(stored: RespondentRecord, record: RespondentRecord, path: Path) -> RespondentRecord:
    """``record`` with the cells and commands of ``stored`` (what ``path`` holds now) it lacks.

    An item answered in both keeps the stored cell: a stored answer never changes, so whatever was
    computed from it stays reproducible, and two answers under one identity are interchangeable.
    """
    if stored.identity != record.identity:
        raise AxError(f"{path} holds answers of another configuration named {record.configuration.name!r} "
                      f"(identity {stored.identity}, not {record.identity}); give this one a new name or delete "
                      "that file to re-evaluate it")
    answered = stored.answered()
    return record.model_copy(update={
        "commands": [*stored.commands, *(command for command in record.commands if command not in stored.commands)],
        "cells": [*stored.cells, *(cell for cell in record.cells if cell.item not in answered)],
    })


class ResponseStore:
    """The ``responses/`` tree of one run directory."""

    def __init__(self, run_dir: str | Path, *, create: bool = False):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / RESPONSES_DIR
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.run_dir.is_dir():
            raise AxError(f"run directory {self.run_dir} does not exist")
        elif not self.root.is_dir():
            raise AxError(f"{self.run_dir} has no {RESPONSES_DIR}/ directory: not an evaluated run directory "
                          f"(run `ax evaluate --run-dir {self.run_dir} ...` first)")

    def domains(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / ITEMS_FILE).is_file())

    def _domain_dir(self, domain: str) -> Path:
        return self.root / domain

    def _locked(self, domain: str) -> AbstractContextManager[None]:
        """The domain's files to oneself: for a read-merge-write that no other writer interleaves."""
        return locked(self._domain_dir(domain) / LOCK_FILE)

    # -- items --------------------------------------------------------------------------------

    def _item_set(self, domain: str) -> ItemSet:
        path = self._domain_dir(domain) / ITEMS_FILE
        return _read(path, ItemSet) if path.is_file() else ItemSet(items=[])

    def items(self, domain: str) -> list[ItemRecord]:
        return self._item_set(domain).items

    def task(self, domain: str) -> TaskInfo | None:
        return self._item_set(domain).task

    def register_items(self, domain: str, items: list[ItemRecord], task: TaskInfo | None = None) -> None:
        """Add items to the domain's list; an id whose content changed since it was answered is refused.

        Split and gold missing from items stored by an older ax are filled in from the same items.
        """
        with self._locked(domain):
            stored = self._item_set(domain)
            known = {item.id: item for item in stored.items}
            changed = [item.id for item in items if item.id in known and known[item.id].digest != item.digest]
            if changed:
                raise AxError(f"domain {domain!r}: item(s) {', '.join(changed[:5])} changed content since they were "
                              f"answered in {self.root / domain}; evaluate into a new run directory")
            updated = {**known, **{item.id: item for item in items if item.id not in known or known[item.id] != item
                                   and known[item.id].gold is None}}
            task = task or stored.task
            if updated != known or task != stored.task or not known:
                _write(self._domain_dir(domain) / ITEMS_FILE, ItemSet(items=list(updated.values()), task=task))

    def data_digest(self, domain: str) -> str:
        """One hash over the domain's items (ids and contents), for the manifest."""
        text = json.dumps(sorted((item.id, item.digest) for item in self.items(domain)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- respondents --------------------------------------------------------------------------

    def path(self, domain: str, name: str) -> Path:
        return self._domain_dir(domain) / f"{name}.json"

    def read(self, domain: str, name: str) -> RespondentRecord | None:
        path = self.path(domain, name)
        return _read(path, RespondentRecord) if path.is_file() else None

    def write(self, record: RespondentRecord) -> None:
        """Store ``record`` merged with what its file holds now (see ``merge_records``)."""
        configuration = record.configuration
        path = self.path(configuration.domain, configuration.name)
        with self._locked(configuration.domain):
            stored = self.read(configuration.domain, configuration.name)
            _write(path, record if stored is None else merge_records(stored, record, path))

    def respondents(self, domain: str) -> list[RespondentRecord]:
        files = sorted(p for p in self._domain_dir(domain).glob("*.json") if p.name != ITEMS_FILE)
        return [_read(p, RespondentRecord) for p in files]

    def split_of(self, domain: str, split: str | None) -> str | None:
        """The split a matrix of ``split`` covers: ``split``, or None for a store that recorded no splits."""
        return split if split is not None and any(item.split for item in self.items(domain)) else None

    def matrix(self, domain: str, split: str | None = None) -> ResponseMatrix:
        """The domain's response matrix over its registered items of ``split`` (None: all), respondents in name order.

        A store written before splits were recorded has none to select by: all its items are used.
        """
        records = self.respondents(domain)
        item_set = self._item_set(domain)
        chosen = self.split_of(domain, split)
        item_ids = tuple(item.id for item in item_set.items if chosen is None or item.split == chosen)
        if not records or not item_ids:
            where = f" of the {split} split" if chosen else ""
            raise AxError(f"domain {domain!r} in {self.root} has no stored responses{where}")
        column = {item: j for j, item in enumerate(item_ids)}
        listed = {item.id for item in item_set.items}
        correct = np.full((len(records), len(item_ids)), np.nan)
        score = np.full_like(correct, np.nan)
        for i, record in enumerate(records):
            for cell in record.cells:
                j = column.get(cell.item)
                if j is None and cell.item not in listed:
                    raise AxError(f"{self.path(domain, record.configuration.name)} answers item {cell.item!r}, "
                                  f"which {self._domain_dir(domain) / ITEMS_FILE} does not list")
                if j is not None:
                    correct[i, j], score[i, j] = float(cell.correct), cell.score
        return ResponseMatrix(domain, tuple(r.configuration for r in records), item_ids, correct, score,
                              identities=tuple(r.identity for r in records),
                              outputs=tuple({c.item: c.output for c in r.cells if c.error is None} for r in records),
                              steps=tuple({c.item: c.steps for c in r.cells if c.steps} for r in records),
                              gold={item.id: item.gold for item in item_set.items if item.gold is not None},
                              task=item_set.task,
                              adaptive={r.configuration.name: r.adaptive for r in records if r.adaptive is not None})
