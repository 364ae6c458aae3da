"""Worker processes for `optimize(..., workers=N)`, `ax compare --workers N` and `ax evaluate --workers N`.

Each job runs in a spawned process with its own copy of the model: on its own GPU when there are
several (worker i takes GPU i mod count; with one GPU the workers share it, which pays where one
Python process cannot keep the GPU busy), else on its share of the CPU cores. Jobs write what a
serial run writes, through the same locked files, so a run directory reads and resumes the same.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from ax.errors import AxError
from ax.programs.domain import AGENT_DOMAINS, BUILTIN_DOMAINS
from ax.programs.imported import saved_domain_names

Job = TypeVar("Job", bound=Hashable)
Result = TypeVar("Result")


def _start_worker(slots: Any, workers: int) -> None:
    """Claim a slot: a GPU when there are any (set before CUDA starts in this process), else a share of the cores."""
    import torch

    slot = slots.get()
    gpus = torch.cuda.device_count()
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def check_findable(domains: Sequence[str]) -> None:
    """Workers are new processes: they find built-in and imported domains, not ones registered in this one."""
    built_in = (*BUILTIN_DOMAINS, *AGENT_DOMAINS)
    lost = [name for name in domains if name not in built_in and name not in saved_domain_names()]
    if lost:
        raise AxError(f"workers run each job in a new process, which finds built-in and imported domains "
                      f"(ax data import) only; {', '.join(map(repr, lost))} exists only in this process. Import it, "
                      "or run with one worker")


def run_in_workers(function: Callable[..., Result], jobs: Sequence[Job], *, workers: int,
                   done: Callable[[Job, Result, int], None] | None = None) -> list[Result]:
    """`function(*job)` for each job in `workers` spawned processes; the results in job order.

    `function` must be importable (module level). `done(job, result, finished)` runs here as each job
    ends; a failed job's error is raised once the other jobs have ended.
    """
    context = multiprocessing.get_context("spawn")  # forking a process with torch's threads running is unsafe
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    results: dict[Job, Result] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(slots, workers)) as pool:
        futures = {pool.submit(function, *job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            results[job] = future.result()
            if done is not None:
                done(job, results[job], len(results))
    return [results[job] for job in jobs]
