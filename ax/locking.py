"""An exclusive OS lock for read-merge-write of files that several processes share.

``fcntl.flock`` locks belong to the open file, so the kernel drops them when the holder
exits or is killed: a crashed writer never leaves a lock that blocks the next one. Each
``locked`` call opens the lock file anew, so threads of one process exclude each other too,
and the lock is not reentrant: never nest two ``locked`` blocks on one path.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created empty, with its folder, if missing) for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # closing the file releases the lock, also on errors
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
