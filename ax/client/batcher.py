"""Gathers generation requests from many threads for one worker thread that decodes them together.

DSPy's Evaluate, Parallel and GEPA call the LM from several threads at once. Running each call
alone wastes the model's batch dimension, and running them concurrently on one PEFT model is
unsafe (its active adapter is global state). So every call waits in one queue, and a single
worker serves them: it starts with what has arrived within a few milliseconds and, between its
decoding steps, takes in more as rows finish (continuous batching, as vLLM and TGI do), so a
short answer never waits for the longest one of its batch. The model is only ever touched from
that worker.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class Intake(Generic[Job]):
    """What a serve function draws its jobs from; it settles each job's Future itself."""

    def __init__(self, batcher: Batcher, first: tuple[Job, Future]):
        self._batcher = batcher
        self._first: list[tuple[Job, Future]] = [first]
        self.taken: list[Future] = [first[1]]

    def take(self, limit: int, wait: bool = False) -> list[tuple[Job, Future]]:
        """Up to `limit` waiting jobs; with `wait`, each further one is waited for up to max_wait_s.

        Nothing is taken past a model change (an adapter load) or close(): those run once the
        rows in flight are done.
        """
        jobs, self._first = self._first[:limit], self._first[limit:]
        jobs += self._batcher._take(limit - len(jobs), wait)
        self.taken += [future for _, future in jobs]
        return jobs


class Batcher(Generic[Job, Result]):
    def __init__(self, serve: Callable[[Intake[Job]], None], *, max_wait_s: float = 0.005,
                 name: str = "ax-batcher"):
        self._serve = serve
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[Job, Future] | None] = queue.Queue()
        self._held: tuple[Job, Future] | None | bool = False  # a call or close() met while serving
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Future:
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def run(self, job: Job) -> Result:
        return self.submit(job).result()

    def call_in_worker(self, fn: Callable[[], Result]) -> Result:
        """Run fn on the worker thread between batches (for changes to the model, e.g. loading adapters)."""
        return self.run(_Call(fn))  # type: ignore[arg-type]

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _take(self, limit: int, wait: bool) -> list[tuple[Job, Future]]:
        taken: list[tuple[Job, Future]] = []
        while len(taken) < limit and self._held is False:
            try:
                item = self._queue.get(timeout=self.max_wait_s) if wait else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None or isinstance(item[0], _Call):
                self._held = item
                break
            taken.append(item)
        return taken

    def _loop(self) -> None:
        while True:
            item, self._held = (self._held, False) if self._held is not False else (self._queue.get(), False)
            if item is None:
                return
            if isinstance(item[0], _Call):
                _settle(item[1], item[0].fn)
                continue
            intake = Intake(self, item)
            try:
                self._serve(intake)
            except BaseException as exc:  # every waiting caller must hear about the failure
                for future in intake.taken:
                    if not future.done():
                        future.set_exception(exc)


class _Call:
    def __init__(self, fn: Callable):
        self.fn = fn


def _settle(future: Future, fn: Callable[[], object]) -> None:
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)
