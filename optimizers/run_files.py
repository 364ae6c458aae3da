"""Files of an optimization run, all written atomically (temporary file, then rename).

A run killed at any moment leaves each file either at its previous version or at its new
one, never half-written, so a rerun can trust everything it finds. Programs are saved as DSPy
JSON state (`program.save(path)`, loadable with `program.load(path)`) without the LMs set on
their predictors: an LM is a live model handle, not part of what was optimized.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TypeVar

import dspy
from pydantic import BaseModel, ValidationError

from ax.errors import AxError
from ax.model import atomic_write_text

M = TypeVar("M", bound=BaseModel)


def write_json(path: Path, value: BaseModel | Any) -> None:
    """Write a pydantic model or plain JSON data to `path` atomically."""
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=1)
    else:
        text = json.dumps(value, indent=1, default=str)
    atomic_write_text(Path(path), text + "\n")


def relative_path(path: Path, root: Path) -> Path:
    """`path` relative to the folder `root` ('..' allowed), for files that must survive moving a run folder."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve()))


def read_json(path: Path, model: type[M]) -> M:
    """Load `path` into `model`; a corrupt or foreign file is an AxError naming it."""
    try:
        return model.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AxError(f"{path} does not exist") from None
    except (ValidationError, ValueError) as error:
        raise AxError(f"{path} is not a valid {model.__name__} file: {str(error).splitlines()[0]}") from None


@contextmanager
def _without_lms(program: dspy.Module) -> Iterator[None]:
    predictors = program.predictors()
    saved = [p.lm for p in predictors]
    for p in predictors:
        p.lm = None
    try:
        yield
    finally:
        for p, lm in zip(predictors, saved):
            p.lm = lm


def own_program(program: dspy.Module) -> dspy.Module:
    """The domain's own program inside a playbook wrapper: its state is what program files hold."""
    return program.program if hasattr(program, "assembler") else program


def save_program(program: dspy.Module, path: Path) -> Path:
    """`program.save` to `path` (a .json file) atomically, leaving out predictor LMs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".json")
    os.close(fd)
    try:
        with _without_lms(program):
            program.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
