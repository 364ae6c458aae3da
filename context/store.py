"""Where playbooks and adaptation checkpoints live: one directory per domain, JSON files
written atomically (temp file + rename), so a crash mid-write leaves the previous version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ax.context.playbook import Playbook
from ax.errors import AxError
from ax.model import atomic_write_text
from ax.names import check_name

DEFAULT_ROOT = Path("ax_playbooks")
PLAYBOOK_FILE = "playbook.json"

M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M]) -> M:
    """Load a JSON file into `model`; a corrupt or foreign file is an AxError naming it."""
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, UnicodeDecodeError) as error:
        raise AxError(f"{path} is not a valid {model.__name__} file ({error.__class__.__name__}: "
                      f"{str(error).splitlines()[0]}); restore it or delete it to start over") from error


def write_model(path: Path, value: BaseModel) -> None:
    atomic_write_text(path, json.dumps(value.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n")


class PlaybookStore:
    """Playbooks under `root/<domain>/playbook.json`, next to their adaptation checkpoints."""

    def __init__(self, root: str | Path = DEFAULT_ROOT):
        self.root = Path(root)

    def domain_dir(self, domain: str) -> Path:
        return self.root / check_name("domain", domain)

    def path(self, domain: str) -> Path:
        return self.domain_dir(domain) / PLAYBOOK_FILE

    def load(self, domain: str, *, create: bool = True) -> Playbook:
        """The saved playbook, or a new empty one when none exists and `create` is set."""
        path = self.path(domain)
        if not path.is_file():
            if create:
                return Playbook(domain=domain)
            raise AxError(f"no playbook for domain {domain!r} at {path}")
        playbook = read_model(path, Playbook)
        if playbook.domain != domain:
            raise AxError(f"{path} holds the playbook of domain {playbook.domain!r}, not {domain!r}")
        return playbook

    def save(self, playbook: Playbook) -> Path:
        path = self.path(playbook.domain)
        write_model(path, playbook)
        return path
