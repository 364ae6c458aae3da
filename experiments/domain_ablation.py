"""An ablation on a real domain: one adapter per (setting, seed) trained on its train split, scored on its dev items.

`ax.experiments.ablate.run_sweep` does the bookkeeping; this module gives it the two callables
(train an adapter, answer the dev items with it) and keeps everything under one folder:

    <out>/setup.json         what the sweep measures; a rerun must match it, so scores of different
                             budgets, data or base models are never averaged together
    <out>/runs.json          one record per finished (setting, seed), saved as each finishes
    <out>/adapters/<key>/    the trained adapters, named by a hash of their config and data
    <out>/responses/         every dev answer of every adapter (ax.evals response store)
    <out>/ablation.json, ablation.md   accuracy per setting with 95% t-intervals across seeds

Rerunning with the same folder resumes: finished runs are not redone, an adapter already on disk
is not retrained (a stored adapter is complete: saving is atomic) and stored answers are not
asked again; a run killed mid-training continues from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ax.adapter_store import MANIFEST_FILE
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import data_hash
from ax.adapters.peft_model import load_training_base
from ax.adapters.train import train_and_save
from ax.configuration import Configuration
from ax.errors import AxError
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import evaluate_configurations
from ax.experiments.ablate import SweepReport, SweepSetting, run_sweep
from ax.model import atomic_write_text
from ax.programs.domain import Domain

if TYPE_CHECKING:
    from ax.client.client import AxLM

SETUP_FILE, RUNS_FILE, JSON_FILE, MARKDOWN_FILE = "setup.json", "runs.json", "ablation.json", "ablation.md"


class AblationSetup(BaseModel):
    """What makes two sweeps' scores comparable; fixed for the life of an output folder."""

    kind: str
    domain: str
    base_model: str
    base_fingerprint: str
    train_examples: int
    train_data_hash: str
    eval_split: str = "dev"
    eval_items: list[str]
    config: dict[str, Any]  # the base training config; each setting and seed changes some keys of it


def check_setup(out: Path, setup: AblationSetup) -> None:
    """Record the setup in a new folder; in a used one, refuse a different setup, naming what changed."""
    path = out / SETUP_FILE
    if not path.is_file():
        atomic_write_text(path, setup.model_dump_json(indent=1))
        return
    try:
        stored = AblationSetup.model_validate_json(path.read_text())
    except ValueError as exc:
        raise AxError(f"{path} is unreadable ({str(exc).splitlines()[0]}); move {out} away to start afresh") from None
    old, new = _flat(stored), _flat(setup)
    changed = [f"{key}: {_short(old.get(key))!r} -> {_short(value)!r}" for key, value in new.items() if old.get(key) != value]
    if changed:
        raise AxError(f"{out} holds a sweep with another setup ({'; '.join(changed)}); its scores cannot be averaged "
                      "with this one's. Use another --out, or the same settings to resume it.")


def _flat(setup: AblationSetup) -> dict[str, Any]:
    data = setup.model_dump()
    return {**data, **{f"config.{key}": value for key, value in data.pop("config").items()}}


def _short(value: Any) -> Any:
    return f"{len(value)} items" if isinstance(value, list) and len(value) > 6 else value


def check_target_modules(model: Any, settings: list[SweepSetting]) -> None:
    """A misspelt module name fails before any training, naming it, rather than deep inside PEFT."""
    import torch

    known = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear)})
    for setting in settings:
        targets = setting.overrides.get("target_modules")
        unknown = [name for name in targets if name not in known] if isinstance(targets, list) else []
        if unknown:
            raise AxError(f"--values: {setting.name} names module(s) {unknown} that the base model does not have; "
                          f"its Linear layers are {known}")


@dataclass(frozen=True)
class TrainedRun:
    path: Path
    config: LoraTrainingConfig


@dataclass
class DomainAblation:
    """The train and score callables of one domain's sweep (see the module docstring)."""

    out: Path
    domain: Domain
    lm: AxLM  # on the in-process base model; its adapters answer the dev items
    train_pairs: list[Any]
    items: list[Any]
    num_threads: int = 8

    def run_key(self, config: LoraTrainingConfig) -> str:
        identity = [config.model_dump(mode="json"), data_hash(self.train_pairs), self.lm.client.base_fingerprint]
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def train(self, config: LoraTrainingConfig) -> TrainedRun:
        target = self.out / "adapters" / self.run_key(config)
        if not (target / MANIFEST_FILE).is_file():
            # PEFT wraps the model it is given, so each run trains on a fresh copy of the serving base.
            base = load_training_base(str(self.lm.client.model_directory), config)
            # No dev pairs: without eval loss there is no early stopping, so every setting trains
            # the same number of steps, and the dev items stay unseen until they are scored.
            train_and_save(base, self.train_pairs, config, domain=self.domain.name, target=target,
                           dev_pairs=[], resume=True)
        return TrainedRun(target, config)

    def score(self, run: TrainedRun) -> float:
        """Accuracy of the run's adapter on the items, every answer kept in the response store."""
        store = ResponseStore(self.out, create=True)
        configuration = Configuration(name=run.path.name, domain=self.domain.name, lora=True, gepa=False,
                                      seed=run.config.seed, role="calibration", adapter=run.path,
                                      source=f"ablation run {run.path.name} in {self.out}")
        evaluate_configurations([configuration], self.domain, lm=self.lm, store=store, items=self.items,
                                num_threads=self.num_threads)
        wanted = {str(item.id) for item in self.items}
        cells = [c for c in store.read(self.domain.name, configuration.name).cells if c.item in wanted]
        return sum(c.correct for c in cells) / len(cells)


def run_domain_ablation(ablation: DomainAblation, setup: AblationSetup, settings: list[SweepSetting],
                        seeds: list[int], base_config: LoraTrainingConfig, command: str) -> SweepReport:
    """Run (or resume) the sweep and write its results as JSON and markdown."""
    check_setup(ablation.out, setup)
    report = run_sweep(base_config, settings, seeds, train_fn=ablation.train, eval_fn=ablation.score,
                       results_path=ablation.out / RUNS_FILE)
    atomic_write_text(ablation.out / JSON_FILE, json.dumps(
        {"command": command, "setup": setup.model_dump(mode="json"), "seeds": seeds, **report.model_dump()}, indent=1))
    atomic_write_text(ablation.out / MARKDOWN_FILE, markdown(setup, report, command))
    return report


def markdown(setup: AblationSetup, report: SweepReport, command: str) -> str:
    steps = setup.config.get("max_steps")
    budget = f"{steps} steps" if steps else f"{setup.config.get('num_epochs'):g} epochs"
    lines = [f"# LoRA {setup.kind} ablation: {setup.domain}", "",
             f"`{command}`", "",
             f"Base model {setup.base_model} ({setup.base_fingerprint}); {setup.train_examples} training examples, "
             f"{budget} each; accuracy on the first {len(setup.eval_items)} "
             f"{setup.eval_split} items; mean over seeds with a 95% t-interval.", "",
             "| setting | seeds | accuracy | 95% CI | per seed |", "| --- | ---: | ---: | --- | --- |"]
    for s in report.summaries:
        per_seed = ", ".join(f"{r.seed}: {r.score:.3f}" for r in report.runs if r.setting == s.setting)
        lines.append(f"| {s.setting} | {s.n} | {s.mean:.3f} | [{s.ci_low:.3f}, {s.ci_high:.3f}] | {per_seed} |")
    return "\n".join(lines) + "\n"
