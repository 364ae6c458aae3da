"""The manifest of one optimized configuration, and loading that configuration back for evaluation.

A configuration (baseline, LoRA-only, GEPA-only, LoRA + GEPA, ...) is a program state file (of
the domain's own program, also when a playbook wraps it), an optional LoRA adapter (or one per
predictor) and an optional ACE playbook, for one domain, base model and seed. Its
manifest says which of each, which optimization steps made it and what they cost, and what
must match to reproduce it: the base model's fingerprint, a hash of the data it was optimized
on, and package versions. Paths are stored relative to the manifest, so a run directory can
be moved or copied whole.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import dspy
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

from ax.configuration import Configuration
from ax.errors import AxError
from ax.client.cost import Cost
from ax.optimizers.lora_step import AdapterRef, AdapterScope
from ax.optimizers.run_files import read_json, relative_path, write_json
from ax.programs.domain import Domain
from ax.programs.registry import get_domain
from ax.versions import RECORDED_PACKAGES

if TYPE_CHECKING:
    from ax.client.client import AxLM

MANIFEST_FILE = "manifest.json"
PROGRAM_FILE = "program.json"
MANIFEST_PACKAGES = (*RECORDED_PACKAGES, "gepa")  # ConfigManifest.package_versions: an adapter's list plus gepa


class PlaybookRef(BaseModel):
    path: Path
    version: int
    bullets: int
    tokens: int | None = None  # the whole playbook rendered, in the model's tokens; None without its tokenizer


class BaseModelRef(BaseModel):
    name: str
    fingerprint: str


class DataRef(BaseModel):
    """Which examples the optimization saw (ids hashed), so evaluation can check it holds them out."""

    hash: str
    train_ids: list[str]
    val_ids: list[str]


class StepRecord(BaseModel):
    """One optimization step of a configuration's strategy, where it ran and what it cost."""

    step: str
    stage_dir: Path
    cost: Cost
    summary: dict[str, Any] = Field(default_factory=dict)


class Artifacts(BaseModel):
    """What a sequence of optimization steps left: a program state, maybe adapters and a playbook.

    `adapter` answers for every predictor; `predictor_adapters` (LoRA's `adapters="per_predictor"`)
    maps predictor names of the domain's own program to their own adapters instead, the others
    answering with the base model. At most one of the two is set.
    """

    program_file: Path
    adapter: AdapterRef | None = None
    predictor_adapters: dict[str, AdapterRef] = Field(default_factory=dict)
    playbook: PlaybookRef | None = None
    steps: list[StepRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_adapter_scope(self) -> Self:
        if self.adapter is not None and self.predictor_adapters:
            raise ValueError("an adapter for every predictor and adapters per predictor: at most one may be given")
        return self

    @property
    def adapter_scope(self) -> AdapterScope | None:
        """Which adapters answer: "shared", "per_predictor", or None (the base model)."""
        return "per_predictor" if self.predictor_adapters else "shared" if self.adapter else None

    def moved(self, where: Callable[[Path], Path]) -> Self:
        """A copy with every file path mapped through `where`."""
        update: dict[str, Any] = {
            "program_file": where(self.program_file),
            "steps": [s.model_copy(update={"stage_dir": where(s.stage_dir)}) for s in self.steps],
        }
        if self.adapter:
            update["adapter"] = self.adapter.model_copy(update={"path": where(self.adapter.path)})
        if self.predictor_adapters:
            update["predictor_adapters"] = {name: ref.model_copy(update={"path": where(ref.path)})
                                            for name, ref in self.predictor_adapters.items()}
        if self.playbook:
            update["playbook"] = self.playbook.model_copy(update={"path": where(self.playbook.path)})
        return self.model_copy(update=update)

    @property
    def cost(self) -> Cost:
        return sum((s.cost for s in self.steps), Cost())

    def configuration(self, domain: str, name: str, *, gepa: bool | None = None, **fields: Any) -> Configuration:
        """These artifacts as a configuration of ``domain`` (``gepa`` defaults to whether a GEPA step ran):
        what the evaluator lists, and what ``.build(domain, lm)`` runs for the optimizers and the evaluator alike."""
        gepa = any(step.step == "gepa" for step in self.steps) if gepa is None else gepa
        return Configuration(
            name=name, domain=domain, lora=self.adapter_scope is not None, gepa=gepa, program=self.program_file,
            adapter=self.adapter.path if self.adapter else None,
            predictor_adapters={predictor: ref.path for predictor, ref in self.predictor_adapters.items()},
            playbook=self.playbook.path if self.playbook else None, **fields)


class ConfigManifest(Artifacts):
    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    domain: str
    config: str
    strategy: str  # steps joined with "->"; "" for the baseline
    preset: str
    seed: int
    base_model: BaseModelRef
    data: DataRef
    total_cost: Cost
    package_versions: dict[str, str]
    created: datetime
    without_playbook_of: str | None = None  # an ablation: the configuration whose playbook this one leaves out


A = TypeVar("A", bound=Artifacts)


def save_relative(artifacts: Artifacts, path: Path) -> Path:
    """Write `artifacts` as JSON with its paths relative to the file's folder (so the folder can move)."""
    path = Path(path)
    write_json(path, artifacts.moved(lambda p: relative_path(p, path.parent)))
    return path


def load_relative(path: str | Path, kind: type[A]) -> A:
    """Read what `save_relative` wrote, paths resolved against the file's folder."""
    path = Path(path)
    return read_json(path, kind).moved(lambda p: (path.parent / p).resolve())


def read_manifest(path: str | Path) -> ConfigManifest:
    """The manifest in `path` (its file or its folder), paths resolved."""
    path = Path(path)
    return load_relative(path / MANIFEST_FILE if path.is_dir() else path, ConfigManifest)


def load_configuration(manifest: ConfigManifest | str | Path, lm: AxLM,
                       domain: Domain | None = None) -> tuple[dspy.Module, AxLM]:
    """The configuration's program and `lm` answering with its adapter(s), ready to evaluate.

    `domain` defaults to the registered domain the manifest names. Refuses an `lm` on another
    base model than the one the configuration was optimized on.
    """
    manifest = manifest if isinstance(manifest, ConfigManifest) else read_manifest(manifest)
    domain = domain if domain is not None else get_domain(manifest.domain)
    if lm.client.base_fingerprint != manifest.base_model.fingerprint:
        raise AxError(f"Configuration {manifest.config!r} of {manifest.domain!r} was optimized on base model "
                      f"{manifest.base_model.name!r} (fingerprint {manifest.base_model.fingerprint}); the LM runs "
                      f"fingerprint {lm.client.base_fingerprint}")
    return manifest.configuration(domain.name, manifest.config.replace("->", "-")).build(domain, lm)
