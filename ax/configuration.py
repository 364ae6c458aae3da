"""What one respondent of an evaluation is: the `configurations.json` the optimizers write and the evaluator reads.

A respondent is a program variant answering a domain's items: the domain's program with
saved state (GEPA's evolved instructions and demos) or instruction overrides, an optional LoRA
adapter (or one per predictor) and an optional ACE playbook. Two roles:

* ``comparison``: a run (one seed) of one of the four configurations of the 2x2 design
  (LoRA off/on x GEPA off/on); these are compared and tested for synergy.
* ``calibration``: any other variant the optimization produced (GEPA candidates, LoRA
  checkpoints, ablations). They are only respondents of the IRT calibration pool: a 2PL item
  model needs on the order of a hundred respondents, four configurations give nearly nothing.

The optimizers describe their runs as a :class:`ConfigurationSet` (``configurations.json``);
paths in it are relative to the file's directory, so a run directory can be moved or copied.
This file format is the whole contract between the optimizers and the evaluator, so it sits
below both, and :meth:`Configuration.build` is the one way either turns a configuration into a
runnable (program, LM).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ax.client.client import AxLM
from ax.context.assembler import ContextAssembler, WithContext
from ax.context.playbook import Playbook
from ax.context.store import read_model
from ax.errors import AxError
from ax.names import NAME_PATTERN  # names become file names in the response store
from ax.programs.domain import Domain
from ax.programs.modules import predictors_named, set_predictor_lms

CONFIGURATIONS_FILE = "configurations.json"
CELL_NAMES = {(False, False): "baseline", (True, False): "lora", (False, True): "gepa", (True, True): "lora+gepa"}

Role = Literal["comparison", "calibration"]


class StepInfo(BaseModel):
    """What one optimization step did to a configuration, as the report's "what each arm did" says it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str  # gepa, lora, ace
    changed: bool  # False: the step left what it was given as it was (GEPA accepted no proposal)
    detail: str  # one line for people: proposals made and accepted and why rejected, loss, bullets


class Configuration(BaseModel):
    """One respondent: what to run, and where it sits in the LoRA x GEPA design.

    ``program`` is the DSPy JSON state (``program.save``) of the domain's own program, not of a
    ``WithContext`` wrapper; None runs the domain's program as shipped. ``instructions`` maps
    predictor names to instruction texts applied after loading, which is how a GEPA candidate
    listed in ``frontier.json`` becomes a respondent without a program file of its own.
    ``predictor_adapters`` maps predictor names (as ``instructions`` names them) to adapters each
    answers with, the others answering with the base model; it replaces ``adapter``, which answers
    for every predictor. ``lora`` says whether an adapter answers, so it must agree with them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    domain: str
    lora: bool
    gepa: bool
    seed: int = 0
    role: Role = "comparison"
    program: Path | None = None
    instructions: dict[str, str] = Field(default_factory=dict)
    adapter: Path | None = None
    predictor_adapters: dict[str, Path] = Field(default_factory=dict)  # predictor name -> its own adapter
    playbook: Path | None = None
    source: str = ""  # free text for people: "GEPA candidate 7 of runs/legal/lora+gepa/seed1"
    steps: tuple[StepInfo, ...] = ()  # what each optimization step did, in order
    without_playbook_of: str | None = None  # an ablation: the respondent whose playbook this one leaves out
    unverified_adapter: bool = False  # the adapter has no ax manifest and is loaded anyway (base weights unchecked)

    @model_validator(mode="after")
    def _lora_means_adapter(self) -> Configuration:
        if self.lora != (self.adapter is not None or bool(self.predictor_adapters)):
            raise ValueError(f"configuration {self.name!r}: lora={self.lora} but adapter={self.adapter}"
                             + (f", predictor_adapters={self.predictor_adapters}" if self.predictor_adapters else "")
                             + "; lora must be true exactly when an adapter is given")
        if self.adapter is not None and self.predictor_adapters:
            raise ValueError(f"configuration {self.name!r}: give adapter (for every predictor) or "
                             "predictor_adapters, not both")
        return self

    @property
    def cell(self) -> str:
        """The 2x2 cell: 'baseline', 'lora', 'gepa' or 'lora+gepa'."""
        return CELL_NAMES[self.lora, self.gepa]

    def moved(self, where: Callable[[Path], Path]) -> Configuration:
        """This configuration with every file path mapped through ``where``."""
        updates: dict[str, Any] = {key: where(value) for key in ("program", "adapter", "playbook")
                                   if (value := getattr(self, key)) is not None}
        if self.predictor_adapters:
            updates["predictor_adapters"] = {name: where(path) for name, path in self.predictor_adapters.items()}
        return self.model_copy(update=updates)

    def resolved(self, base: Path) -> Configuration:
        """This configuration with relative paths read against ``base``."""
        return self.moved(lambda path: path if path.is_absolute() else base / path)

    def build(self, domain: Domain, lm: dspy.BaseLM | None = None) -> tuple[dspy.Module, dspy.BaseLM | None]:
        """The runnable program and the LM it answers with, as the optimizers and the evaluator both run it.

        The domain's program with the saved state and instruction overrides, each predictor's adapter
        LM set on it, wrapped in the playbook (its context counted in ``lm``'s tokens); the LM answers
        with the configuration's adapter, or with the base model. Adapters load once per weights.
        """
        program = domain.program()
        if self.program is not None:
            if not self.program.is_file():
                raise AxError(f"configuration {self.name!r}: program file {self.program} does not exist")
            try:
                program.load(str(self.program))
            except (KeyError, ValueError) as error:
                raise AxError(f"configuration {self.name!r}: {self.program} is not the saved state of "
                              f"domain {domain.name!r}'s program ({type(error).__name__}: {error})") from None
        predictors = predictors_named(program, self.instructions, f"configuration {self.name!r} sets instructions of")
        for name, text in self.instructions.items():
            predictors[name].signature = predictors[name].signature.with_instructions(text)
        set_predictor_lms(program, {name: self._answering(lm, path) for name, path in self.predictor_adapters.items()},
                          f"configuration {self.name!r}")
        answering = self._answering(lm, self.adapter)
        if self.playbook is None:
            return program, answering
        if not self.playbook.is_file():
            raise AxError(f"configuration {self.name!r}: playbook {self.playbook} does not exist")
        tokenizer = lm.client.tokenizer if isinstance(lm, AxLM) else None
        return WithContext(program, ContextAssembler(read_model(self.playbook, Playbook), tokenizer=tokenizer)), answering

    def _answering(self, lm: dspy.BaseLM | None, adapter: Path | None) -> dspy.BaseLM | None:
        """``lm`` answering with ``adapter`` (None: the base model)."""
        if not isinstance(lm, AxLM):
            if adapter is not None:
                raise AxError(f"configuration {self.name!r} needs LoRA adapter {adapter}, which only an ax LM can "
                              f"serve (ax.LM(...)); got {type(lm).__name__}")
            return lm
        if adapter is None:
            return lm.with_adapter(None)
        return lm.with_adapter(lm.client.adapter_named_for(adapter, allow_unverified=self.unverified_adapter))


class ConfigurationSet(BaseModel):
    """Every respondent of a run directory; names are unique within a domain."""

    model_config = ConfigDict(extra="forbid")

    configurations: list[Configuration]

    @model_validator(mode="after")
    def _unique_names(self) -> ConfigurationSet:
        seen: set[tuple[str, str]] = set()
        for configuration in self.configurations:
            key = (configuration.domain, configuration.name)
            if key in seen:
                raise ValueError(f"configuration {configuration.name!r} appears twice in domain "
                                 f"{configuration.domain!r}")
            seen.add(key)
        return self

    def select(self, domain: str, names: list[str] | None = None) -> list[Configuration]:
        """The domain's configurations, or just ``names`` (each must exist)."""
        mine = [c for c in self.configurations if c.domain == domain]
        if not names:
            if not mine:
                raise AxError(f"no configuration for domain {domain!r}")
            return mine
        by_name = {c.name: c for c in mine}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise AxError(f"no configuration named {', '.join(map(repr, missing))} in domain {domain!r}; "
                          f"known: {', '.join(sorted(by_name)) or 'none'}")
        return [by_name[name] for name in names]


def load_configurations(path: str | Path) -> ConfigurationSet:
    """Read a ``configurations.json``, resolving relative paths against its directory."""
    path = Path(path)
    try:
        loaded = ConfigurationSet.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AxError(f"{path} does not exist: a run directory lists its respondents in "
                      f"{CONFIGURATIONS_FILE}") from None
    except (ValidationError, ValueError) as error:
        raise AxError(f"{path} is not a valid {CONFIGURATIONS_FILE}: {str(error).splitlines()[0]} "
                      f"({' '.join(str(error).splitlines()[1:3]).strip()})") from None
    base = path.parent
    return ConfigurationSet(configurations=[c.resolved(base) for c in loaded.configurations])
