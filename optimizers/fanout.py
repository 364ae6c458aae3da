"""Independent optimizations, one (domain, seed) per process: `optimize(..., workers=N)`, `ax compare --workers N`.

The stages of one seed share folders (a `gepa->lora` configuration reuses the `gepa` stage), but
different seeds and domains share nothing, so each (domain, seed) runs `optimize` in a spawned
process of its own with its own copy of the model, on its own GPU when there are GPUs (worker i
takes GPU i mod count) or on its share of the CPU cores. Each writes the stage folders and
manifests a serial run writes, and `configurations.json` is merged under a lock, so the run
directory reads, reports and resumes as a serial run's does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from rich.console import Console

from ax.errors import AxError
from ax.optimizers.manifest import ConfigManifest
from ax.programs.domain import BUILTIN_DOMAINS
from ax.programs.imported import saved_domain_names


def _start_worker(slots: Any, workers: int) -> None:
    """Claim a slot: a GPU when there are any (set before CUDA starts in this process), else a share of the cores."""
    import torch

    slot = slots.get()
    gpus = torch.cuda.device_count()
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _optimize_one(domain: str, seed: int, options: dict[str, Any]) -> list[ConfigManifest]:
    from ax.optimizers.configurations import optimize  # configurations imports this module: its workers>1 runs here

    return optimize(domain, seeds=[seed], console=Console(stderr=True, quiet=True), show_progress=False, **options)


def check_findable(domains: Sequence[str]) -> None:
    """Workers are new processes: they find built-in and imported domains, not ones registered in this one."""
    lost = [name for name in domains if name not in BUILTIN_DOMAINS and name not in saved_domain_names()]
    if lost:
        raise AxError(f"workers run each (domain, seed) in a new process, which finds built-in and imported domains "
                      f"(ax data import) only; {', '.join(map(repr, lost))} exists only in this process. Import it, "
                      "or run with one worker")


def optimize_in_workers(jobs: Sequence[tuple[str, int]], *, workers: int, console: Console,
                        **options: Any) -> list[ConfigManifest]:
    """Run `optimize(domain, seeds=[seed], **options)` for each (domain, seed) job in `workers` processes.

    `options` are optimize's keyword arguments other than `lm` (each process loads `model`).
    Returns the manifests in job order; a failed job's error is raised once the other jobs have ended.
    """
    if options.get("lm") is not None:
        raise AxError("workers load one model per process from `model`; pass model=..., not lm=...")
    check_findable(sorted({domain for domain, _ in jobs}))
    context = multiprocessing.get_context("spawn")  # forking a process with torch's threads running is unsafe
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    results: dict[tuple[str, int], list[ConfigManifest]] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(slots, workers)) as pool:
        futures = {pool.submit(_optimize_one, domain, seed, options): (domain, seed) for domain, seed in jobs}
        for future in as_completed(futures):
            domain, seed = futures[future]
            results[domain, seed] = future.result()
            console.print(f"{domain} seed {seed}: {len(results[domain, seed])} configurations optimized "
                          f"({len(results)} of {len(jobs)} jobs done)")
    return [manifest for job in jobs for manifest in results[job]]
