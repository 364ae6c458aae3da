"""Gathers generation requests from many threads for one worker thread that decodes them together.

DSPy's Evaluate, Parallel and GEPA call the LM from several threads at once. Running each call
alone wastes the model's batch dimension, and running them concurrently on one PEFT model is
unsafe (its active adapter is global state). So every call waits in one queue, and a single
worker serves them: it starts with what has arrived within a few milliseconds and, between its
decoding steps, takes in more as rows finish (continuous batching, as vLLM and TGI do), so a
short answer never waits for the longest one of its batch. The model is only ever touched from
that worker.

The worker must stop before the interpreter finalizes: Python ends a daemon thread that is
still inside a torch call there by unwinding its C++ frames, which aborts the process
("terminate called without an active exception", exit status 134) after a run that went well.
So every live batcher is closed at exit, and close() fails the calls in flight at the next
decoding step instead of finishing them.
"""

from __future__ import annotations

import atexit
import queue
import threading
import warnings
import weakref
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

from ax.errors import AxError

Job = TypeVar("Job")
Result = TypeVar("Result")

CLOSE_TIMEOUT_S = 30.0  # longer than any one decoding step or adapter load, which close() lets end
CLOSED = "The ax client is closed (its model worker has stopped): make a new ax.LM() to generate again."


class Intake(Generic[Job]):
    """What a serve function draws its jobs from; it settles each job's Future itself."""

    def __init__(self, batcher: Batcher, first: tuple[Job, Future]):
        self._batcher = batcher
        self._first: list[tuple[Job, Future]] = [first]
        self.taken: list[Future] = [first[1]]

    def take(self, limit: int, wait: bool = False) -> list[tuple[Job, Future]]:
        """Up to `limit` waiting jobs; with `wait`, each further one is waited for up to max_wait_s.

        Nothing is taken past a model change (an adapter load): it runs once the rows in flight
        are done. After close() this raises, which fails every call this intake has taken.
        """
        if self._batcher.closed:
            raise AxError(CLOSED)
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
        self._closing = threading.Event()
        self._submitting = threading.Lock()  # nothing is queued behind close()'s stop marker
        # Daemon, so a script that never closes its client still reaches the atexit hook below
        # (the interpreter joins non-daemon threads before running atexit hooks).
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()
        _live.add(self)

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def submit(self, job: Job) -> Future:
        future: Future = Future()
        with self._submitting:
            if self.closed:
                raise AxError(CLOSED)
            self._queue.put((job, future))
        return future

    def run(self, job: Job) -> Result:
        return self.submit(job).result()

    def call_in_worker(self, fn: Callable[[], Result]) -> Result:
        """Run fn on the worker thread between batches (for changes to the model, e.g. loading adapters)."""
        return self.run(_Call(fn))  # type: ignore[arg-type]

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Refuse new calls, fail the waiting and running ones, and wait for the worker to stop.

        Closing again only waits again; from the worker itself (a call_in_worker function) it
        cannot wait, and the worker stops once that function returns.
        """
        with self._submitting:
            if not self.closed:
                self._closing.set()
                self._queue.put(None)
        if threading.current_thread() is self._worker:
            return
        self._worker.join(timeout_s)
        if self._worker.is_alive():
            warnings.warn(f"ax's model worker {self._worker.name!r} was still busy {timeout_s:g}s after close(); "
                          f"the interpreter may abort if it exits now", RuntimeWarning, stacklevel=2)

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
            if self.closed:
                _fail(item[1], AxError(CLOSED))
                continue
            if isinstance(item[0], _Call):
                _settle(item[1], item[0].fn)
                continue
            intake = Intake(self, item)
            try:
                self._serve(intake)
            except BaseException as exc:  # every waiting caller must hear about the failure
                for future in intake.taken:
                    _fail(future, exc)


class _Call:
    def __init__(self, fn: Callable):
        self.fn = fn


def _settle(future: Future, fn: Callable[[], object]) -> None:
    try:
        future.set_result(fn())
    except BaseException as exc:
        future.set_exception(exc)


def _fail(future: Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# Weak: a closed batcher's worker has let go of it, and nothing here should keep its model alive.
_live: weakref.WeakSet[Batcher] = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    for batcher in list(_live):
        batcher.close()
