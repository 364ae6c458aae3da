"""A respondent's identity: digests of the files a configuration names (its program, its playbook)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ax.errors import AxError


def file_digest(path: Path | None) -> str | None:
    """sha256 of a file's bytes (None for no file); an absent file is an AxError naming it."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise AxError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise AxError(f"{path} is a directory, expected a file") from None
