"""How a respondent (an ``ax.configuration.Configuration``) is rebuilt into a runnable program.

The program is the domain's own, with the configuration's saved state or instruction
overrides, each predictor's adapter LM set on it, wrapped in its ACE playbook if it has one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dspy

from ax.configuration import Configuration
from ax.context import ContextAssembler, Playbook, WithContext
from ax.context.store import read_model
from ax.errors import AxError
from ax.programs.modules import predictors_named, set_predictor_lms


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


def build_program(configuration: Configuration, domain: Any, *, tokenizer: Any = None,
                  predictor_lms: Mapping[str, Any] | None = None) -> dspy.Module:
    """The runnable program of ``configuration``: load state, override instructions, wrap in the playbook.

    ``domain`` is an ``ax.programs.Domain``; ``tokenizer`` counts the playbook context's tokens
    (the serving model's, so the context matches what the optimizer's runs saw).
    ``predictor_lms``: the LM each named predictor answers with (its own adapter's), set on it.
    """
    program = domain.program()
    if configuration.program is not None:
        if not configuration.program.is_file():
            raise AxError(f"configuration {configuration.name!r}: program file {configuration.program} does not exist")
        try:
            program.load(str(configuration.program))
        except (KeyError, ValueError) as error:
            raise AxError(f"configuration {configuration.name!r}: {configuration.program} is not the saved state of "
                          f"domain {domain.name!r}'s program ({type(error).__name__}: {error})") from None
    predictors = predictors_named(program, configuration.instructions,
                                  f"configuration {configuration.name!r} sets instructions of")
    for name, text in configuration.instructions.items():
        predictors[name].signature = predictors[name].signature.with_instructions(text)
    set_predictor_lms(program, predictor_lms or {}, f"configuration {configuration.name!r}")
    if configuration.playbook is None:
        return program
    if not configuration.playbook.is_file():
        raise AxError(f"configuration {configuration.name!r}: playbook {configuration.playbook} does not exist")
    playbook = read_model(configuration.playbook, Playbook)
    return WithContext(program, ContextAssembler(playbook, tokenizer=tokenizer))
