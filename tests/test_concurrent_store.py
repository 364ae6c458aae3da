"""Several processes writing one run directory at once: every answer, command and configuration survives.

Each writer keeps its own copy of a respondent's record, read once and extended as it answers,
as ``ax evaluate`` does; before writes merged under a lock, the last writer's copy erased the others'.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from datetime import datetime

import dspy
import pytest

from ax.configuration import Configuration, load_configurations
from ax.errors import AxError
from ax.evals.matrix_store import LOCK_FILE, Cell, ItemRecord, RespondentRecord, ResponseStore
from ax.locking import locked

DOMAIN = "legal"
RESPONDENTS = ("base", "lora", "gepa")
WRITERS = 4
ITEMS_PER_WRITER = 15
FORK = multiprocessing.get_context("fork")  # the children need nothing but what this module already imported


def _record(name: str, cells: dict[str, bool], identity: str = "id",
            commands: tuple[str, ...] = ()) -> RespondentRecord:
    return RespondentRecord(configuration=Configuration(name=name, domain=DOMAIN, lora=False, gepa=False),
                            identity=identity, model="m", model_fingerprint="fp", commands=list(commands),
                            cells=[Cell(item=item, score=float(ok), correct=ok) for item, ok in cells.items()])


def _checkpointing_writer(run_dir, writer: int, start) -> None:
    """One `ax evaluate`: register its items, keep stale copies of the records, write after every answer."""
    store = ResponseStore(run_dir)
    items = [f"w{writer}-{k}" for k in range(ITEMS_PER_WRITER)]
    start.wait()
    store.register_items(DOMAIN, [ItemRecord(id=item, digest=item, split=f"split-{writer}") for item in items])
    command = f"ax evaluate --writer {writer}"
    records = {name: (store.read(DOMAIN, name) or _record(name, {})) for name in RESPONDENTS}
    records = {name: r.model_copy(update={"commands": [*r.commands, command]}) for name, r in records.items()}
    for item in items:
        for name in RESPONDENTS:
            cell = Cell(item=item, score=1.0, correct=True)
            records[name] = records[name].model_copy(update={"cells": [*records[name].cells, cell]})
            store.write(records[name])


def test_concurrent_writers_lose_no_answer_no_command_and_no_item(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    start = FORK.Barrier(WRITERS)
    writers = [FORK.Process(target=_checkpointing_writer, args=(tmp_path, k, start)) for k in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
    assert [process.exitcode for process in writers] == [0] * WRITERS

    expected = {f"w{k}-{i}" for k in range(WRITERS) for i in range(ITEMS_PER_WRITER)}
    assert {item.id for item in store.items(DOMAIN)} == expected
    for name in RESPONDENTS:
        record = store.read(DOMAIN, name)
        assert len(record.cells) == len(expected) and record.answered() == expected
        assert sorted(record.commands) == [f"ax evaluate --writer {k}" for k in range(WRITERS)]
    assert store.matrix(DOMAIN).correct.shape == (len(RESPONDENTS), len(expected))


def test_a_write_merges_into_the_file_keeping_stored_cells_and_command_order(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    store.write(_record("base", {"i0": True, "i1": False}, commands=("first", "second")))
    store.write(_record("base", {"i1": True, "i2": True}, commands=("third", "first")))
    record = store.read(DOMAIN, "base")
    assert [(c.item, c.correct) for c in record.cells] == [("i0", True), ("i1", False), ("i2", True)]
    assert record.commands == ["first", "second", "third"]


def test_an_identity_clash_is_still_refused(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    store.write(_record("base", {"i0": True}, identity="one"))
    with pytest.raises(AxError, match="base.json holds answers of another configuration named 'base'"):
        store.write(_record("base", {"i1": True}, identity="two"))
    record = store.read(DOMAIN, "base")
    assert record.identity == "one" and record.answered() == {"i0"}


def _hold_lock(path, held) -> None:
    with locked(path):
        held.set()
        time.sleep(60)


def test_a_writer_killed_holding_the_lock_does_not_block_the_next(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    store.write(_record("base", {"i0": True}))
    held = FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(store.root / DOMAIN / LOCK_FILE, held))
    holder.start()
    assert held.wait(10)
    waiting = threading.Thread(target=store.write, args=(_record("base", {"i1": True}),))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive(), "a write went ahead while another process held the domain's lock"

    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    killed = time.monotonic()
    waiting.join(1.0)
    store.write(_record("base", {"i2": True}))
    assert not waiting.is_alive() and time.monotonic() - killed < 1.0
    assert store.read(DOMAIN, "base").answered() == {"i0", "i1", "i2"}


def _manifest(run_dir, seed: int):
    from ax.optimizers.manifest import ConfigManifest

    return ConfigManifest(program_file=run_dir / DOMAIN / f"s{seed}" / "program.json", domain=DOMAIN,
                          config="baseline", strategy="", preset="test", seed=seed,
                          base_model={"name": "m", "fingerprint": "fp"},
                          data={"hash": "h", "train_ids": [], "val_ids": []}, total_cost={},
                          package_versions={}, created=datetime(2026, 1, 1))


def _configurations_writer(run_dir, writer: int, start) -> None:
    from ax.optimizers.respondents import write_configurations

    start.wait()
    for seed in range(writer * 10, writer * 10 + 10):
        write_configurations(run_dir, [_manifest(run_dir, seed)])


def test_concurrent_optimizers_keep_every_configuration(tmp_path):
    import ax.optimizers.respondents  # noqa: F401  imported once, before the fork

    start = FORK.Barrier(WRITERS)
    writers = [FORK.Process(target=_configurations_writer, args=(tmp_path, k, start)) for k in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
    assert [process.exitcode for process in writers] == [0] * WRITERS
    names = {c.name for c in load_configurations(tmp_path / "configurations.json").configurations}
    assert names == {f"baseline-s{seed}" for seed in range(WRITERS * 10)}


def _toy_domain(metric):
    from ax.programs.domain import Domain

    return Domain(name="toy", program=lambda: dspy.Predict("question -> answer"), metric=metric,
                  data=[dspy.Example(id="toy-0", question="q", answer="a").with_inputs("question")],
                  task="extraction", label_fields=("answer",))


def _toy_items(split: str, n: int) -> list[dspy.Example]:
    return [dspy.Example(id=f"{split}-{k}", question=f"<{split} {k}>", answer=str(k)).with_inputs("question")
            for k in range(n)]


def _evaluate_split(run_dir, split: str, n: int, both_prepared, new_cells) -> None:
    """One `ax evaluate --split`: its first answer waits until the other run has read the record too."""
    from dspy.utils.dummies import DummyLM

    from ax.evals.runner import evaluate_configurations

    items = _toy_items(split, n)
    waited = []

    def metric(example, prediction, trace=None):
        if not waited:
            waited.append(both_prepared.wait())
        return float(prediction.answer == example.answer)

    lm = DummyLM({example.question: {"answer": example.answer} for example in items})
    summary = evaluate_configurations(
        [Configuration(name="base", domain="toy", lora=False, gepa=False)], _toy_domain(metric), lm=lm,
        store=ResponseStore(run_dir), items=items, num_threads=1, checkpoint_seconds=0,
        command=f"ax evaluate --split {split}", split=split)
    new_cells.put((split, summary.new_cells["base"]))


def test_two_evaluations_at_once_keep_both_answer_sets(tmp_path):
    """Two processes (threads would share DSPy's progress bars) read the record before either writes."""
    store = ResponseStore(tmp_path, create=True)
    sizes = {"dev": 6, "train": 4}
    both_prepared, new_cells = FORK.Barrier(2, timeout=30), FORK.Queue()
    runs = [FORK.Process(target=_evaluate_split, args=(tmp_path, split, n, both_prepared, new_cells))
            for split, n in sizes.items()]
    for run in runs:
        run.start()
    reported = dict(new_cells.get(timeout=60) for _ in runs)  # before joining: a child exits once its queue drains
    for run in runs:
        run.join(60)
    assert [run.exitcode for run in runs] == [0, 0] and reported == sizes
    record = store.read("toy", "base")
    assert record.answered() == {str(e.id) for split, n in sizes.items() for e in _toy_items(split, n)}
    assert all(cell.correct for cell in record.cells)
    assert sorted(record.commands) == ["ax evaluate --split dev", "ax evaluate --split train"]
    assert {item.split for item in store.items("toy")} == set(sizes)


def test_answers_reach_the_store_while_the_run_goes_on(tmp_path):
    """An agent's answer can take seconds: what finished is on disk before the run ends or breaks."""
    from dspy.utils.dummies import DummyLM

    from ax.evals.runner import evaluate_configurations

    items = _toy_items("test", 4)
    on_disk = []

    def metric(example, prediction, trace=None):
        stored = ResponseStore(tmp_path).read("toy", "base")
        on_disk.append(0 if stored is None else len(stored.cells))
        if example.id == "test-3":
            raise RuntimeError("backend crashed")
        return float(prediction.answer == example.answer)

    lm = DummyLM({example.question: {"answer": example.answer} for example in items})
    with pytest.raises(AxError, match="1 of 4 cells failed.*backend crashed"):
        evaluate_configurations([Configuration(name="base", domain="toy", lora=False, gepa=False)],
                                _toy_domain(metric), lm=lm, store=ResponseStore(tmp_path, create=True),
                                items=items, num_threads=1, checkpoint_seconds=0, split="test")
    assert on_disk == [0, 1, 2, 3]
    assert [cell.item for cell in ResponseStore(tmp_path).read("toy", "base").cells] == ["test-0", "test-1", "test-2"]
