"""Gathers generation requests from many threads into batches run by one worker thread.

DSPy's Evaluate, Parallel and GEPA call the LM from several threads at once. Running each call
alone wastes the model's batch dimension, and running them concurrently on one PEFT model is
unsafe (its active adapter is global state). So every call waits in one queue; a single worker
takes what has arrived within a few milliseconds and runs it as one batch, each row with its
own adapter. The model is only ever touched from that worker.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class Batcher(Generic[Job, Result]):
    def __init__(self, run_batch: Callable[[list[Job]], list[Result]], *, max_batch_size: int = 16,
                 max_wait_s: float = 0.005, name: str = "ax-batcher"):
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[Job, Future] | None] = queue.Queue()
        self.batch_sizes: list[int] = []
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

    def _collect(self, first: tuple[Job, Future]) -> list[tuple[Job, Future]]:
        batch = [first]
        try:
            while len(batch) < self.max_batch_size:
                item = self._queue.get(timeout=self.max_wait_s)
                if item is None:
                    self._queue.put(None)
                    break
                if isinstance(item[0], _Call):
                    self._queue.put(item)  # calls run alone, after this batch
                    break
                batch.append(item)
        except queue.Empty:
            pass
        return batch

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item[0], _Call):
                _settle([item], lambda jobs: [jobs[0].fn()])
                continue
            batch = self._collect(item)
            self.batch_sizes.append(len(batch))
            _settle(batch, self._run_batch)


class _Call:
    def __init__(self, fn: Callable):
        self.fn = fn


def _settle(batch: list[tuple[object, Future]], run: Callable[[list], list]) -> None:
    jobs = [job for job, _ in batch]
    try:
        results = run(jobs)
    except BaseException as exc:  # every waiting caller must hear about the failure
        for _, future in batch:
            future.set_exception(exc)
        return
    for (_, future), result in zip(batch, results):
        future.set_result(result)
