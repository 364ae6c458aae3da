"""`optimize`: the configurations the evaluator compares, for one domain and one or more seeds.

    optimize("legal", configs=["baseline", "lora", "gepa", "combined"], seeds=[0, 1, 2], preset="quick")

Every configuration of a seed is optimized on the same examples: a fixed subset of the domain's
train split (GEPA's minibatches and the LoRA data) and of its dev split (GEPA's validation set),
drawn the same way for every seed, so configurations differ only in how they were optimized and
seeds only in the optimizers' randomness. The test split is never touched. `combined` is the
strategy given as `combined` (default `gepa->lora`, BetterTogether's prompt-then-weights order);
any other strategy string ('lora->gepa', 'gepa->lora->gepa', 'ace->gepa') is a configuration too.
Unless `context=False`, every configuration ends with an `ace` step (baseline -> `ace`, lora ->
`lora->ace`, combined -> `gepa->lora->ace`): the ACE playbook it answers with is adapted on the
train examples by its own program and adapter. The configuration keeps its name. With
`ablate_context=True` each also gets a twin `<config>-no-playbook`: the same optimized program and
adapter (the same stages, nothing is optimized twice) answering without the playbook, which is how
the report measures what the playbook adds.

Output, under `<run_dir>/<domain>/seed-<n>/`: `stages/` (one folder per optimization stage,
shared between configurations with a common prefix) and `configs/<config>/manifest.json`; and
`<run_dir>/configurations.json`, the evaluator's list of respondents (see respondents.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dspy
from rich.console import Console
from rich.table import Table

import ax
from ax.context import Playbook
from ax.errors import AxError
from ax.model import dtype_change
from ax.optimizers.manifest import (
    MANIFEST_FILE, MANIFEST_PACKAGES, BaseModelRef, ConfigManifest, DataRef, PlaybookRef, save_relative,
)
from ax.optimizers.presets import Preset, get_preset
from ax.optimizers.reflection import resolve_reflection_lm
from ax.optimizers.respondents import write_configurations
from ax.optimizers.run_files import read_json, write_json
from ax.optimizers.strategies import (
    StrategyContext, baseline, parse_strategy, run_strategy, strategy_name, subset, with_playbook,
)
from ax.programs.domain import Domain
from ax.programs.registry import get_domain
from ax.versions import package_versions
from ax.workers import check_findable, run_in_workers

if TYPE_CHECKING:
    from ax.client.client import AxLM

DEFAULT_CONFIGS = ("baseline", "lora", "gepa", "combined")
NAMED_CONFIGS = {"baseline": "", "lora": "lora", "gepa": "gepa"}


NO_PLAYBOOK = "-no-playbook"


def config_strategies(configs: Sequence[str], combined: str = "gepa->lora", context: bool = False,
                      ablate_context: bool = False) -> dict[str, tuple[str, ...]]:
    """Each configuration's steps: the named ones, 'combined', or a strategy string given as the name;
    with `context`, each ends with the `ace` step that adapts its playbook, and with `ablate_context`
    each also has a `<name>-no-playbook` twin without that step."""
    if ablate_context and not context:
        raise AxError("ablate_context compares each configuration with and without its playbook; it needs context=True")
    strategies = {}
    for name in configs:
        text = combined if name == "combined" else NAMED_CONFIGS.get(name, name)
        try:
            steps = parse_strategy(text)
        except AxError as error:
            raise AxError(f"Configuration {name!r}: {error} (named configurations: "
                          f"{', '.join([*NAMED_CONFIGS, 'combined'])})") from None
        strategies[name] = with_playbook(steps) if context else steps
        if ablate_context:
            strategies[name + NO_PLAYBOOK] = steps
    return strategies


def data_ref(trainset: list[dspy.Example], valset: list[dspy.Example]) -> DataRef:
    train_ids, val_ids = [str(e.id) for e in trainset], [str(e.id) for e in valset]
    digest = hashlib.sha256(json.dumps({"train": train_ids, "val": val_ids}).encode()).hexdigest()[:16]
    return DataRef(hash=digest, train_ids=train_ids, val_ids=val_ids)


def _config_dir(seed_dir: Path, config: str) -> Path:
    return seed_dir / "configs" / config.replace("->", "-")


def _summary(manifests: list[ConfigManifest]) -> Table:
    table = Table(title="Optimized configurations")
    for column in ("domain", "seed", "config", "strategy", "GEPA val", "playbook bullets", "rollouts", "LoRA steps",
                   "wall s"):
        table.add_column(column)
    for m in manifests:
        gepa = [s.summary for s in m.steps if s.step == "gepa"]
        val = f"{gepa[-1]['seed_val_score']:.2f} -> {gepa[-1]['best_val_score']:.2f}" if gepa else ""
        table.add_row(m.domain, str(m.seed), m.config, m.strategy or "-", val,
                      str(m.playbook.bullets) if m.playbook else "-", str(m.total_cost.rollouts),
                      str(m.total_cost.train_steps), f"{m.total_cost.wall_s:.0f}")
    return table


STAGE_INPUTS_FILE = "stage_inputs.json"


def check_stage_inputs(seed_dir: Path, inputs: dict[str, Any]) -> None:
    """Finished stages are reused by folder, so a folder made with another preset, data or base
    model must not be: the first run records what its stages were made from, later runs must match."""
    path = seed_dir / STAGE_INPUTS_FILE
    if not path.is_file():
        write_json(path, inputs)
        return
    recorded, now = _flat(json.loads(path.read_text(encoding="utf-8"))), _flat(inputs)
    changed = [f"{key}: {recorded.get(key)!r} -> {now.get(key)!r}" for key in sorted(set(recorded) | set(now))
               if recorded.get(key) != now.get(key)]
    if changed:
        raise AxError(f"{path}: the stages in {seed_dir} were made from other inputs ({'; '.join(changed[:5])}"
                      f"{'; ...' if len(changed) > 5 else ''}); use another run directory, or delete this one "
                      f"to start over.{dtype_change(recorded.get('base_model'), now.get('base_model'))}")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}" if prefix else key).items()}


def optimize(domain: Domain | str, configs: Sequence[str] = DEFAULT_CONFIGS, seeds: Sequence[int] = (0,),
             preset: str | Preset = "quick", run_dir: str | Path = "ax_runs", *, lm: AxLM | None = None,
             model: str | None = None, dtype: str | None = None, combined: str = "gepa->lora", playbook: str | Path | None = None,
             context: bool = True, ablate_context: bool = False, reflection_lm: Any = None,
             console: Console | None = None, show_progress: bool = True, workers: int = 1) -> list[ConfigManifest]:
    """Optimize `domain` (a name or an ax.programs Domain) into `configs` for each seed; returns their manifests.

    `lm`: an ax LM on an in-process model (default: `ax.LM(model, dtype=dtype)`, the embedded SmolLM2).
    `playbook`: a playbook.json every configuration starts from. `context`: end every configuration
    with an ACE playbook adapted on the preset's train examples (False: no playbook but `playbook`);
    `ablate_context`: also answer with each configuration's program and adapter without it.
    `workers`: optimize the seeds in that many processes at once, each loading `model` (see `optimize_in_workers`).
    `reflection_lm`: a litellm model string or LM for GEPA and ACE reflection (default: the
    preset's, else the local model).
    Finished stages are reused and an interrupted one resumes when run again with the same `run_dir`.
    """
    console = console or Console(stderr=True)
    domain = get_domain(domain) if isinstance(domain, str) else domain
    preset = get_preset(preset) if isinstance(preset, str) else preset
    strategies = config_strategies(configs, combined, context, ablate_context)
    if workers > 1:
        manifests = optimize_in_workers(
            [(domain.name, seed) for seed in seeds], workers=workers, console=console, configs=configs, preset=preset,
            run_dir=run_dir, lm=lm, model=model, dtype=dtype, combined=combined, playbook=playbook, context=context,
            ablate_context=ablate_context, reflection_lm=reflection_lm)
        console.print(_summary(manifests))
        return manifests
    ablation_of = {name + NO_PLAYBOOK: name for name in configs} if ablate_context else {}
    if lm is None:
        lm = ax.LM(model, dtype=dtype)
    splits = domain.splits()
    trainset = subset(splits.train, preset.train_size, f"{domain.name}-train")
    valset = subset(splits.dev, preset.val_size, f"{domain.name}-dev")
    data = data_ref(trainset, valset)
    # None (a local reflection model) lets each step choose: GEPA reflects on the base weights, ACE with
    # the configuration's own LM, so an adapted configuration's playbook is written by its adapted model.
    spec = reflection_lm or preset.gepa.reflection_lm
    reflection = resolve_reflection_lm(spec, lm) if spec is not None else None
    base_model = BaseModelRef(name=lm.client.model_name, fingerprint=lm.client.base_fingerprint)
    start_playbook = None
    if playbook is not None:
        loaded = read_json(Path(playbook), Playbook)
        start_playbook = PlaybookRef(path=Path(playbook), version=loaded.version, bullets=len(loaded.bullets))
    console.print(f"Optimizing {domain.name!r} ({preset.name} preset): {len(trainset)} train / {len(valset)} val "
                  f"examples, configurations {', '.join(strategies)}, seeds {', '.join(map(str, seeds))}",
                  soft_wrap=True)

    manifests = []
    for seed in seeds:
        seed_dir = Path(run_dir) / domain.name / f"seed-{seed}"
        # the answering weights: GEPA's rollouts and the playbook depend on the dtype too (fp32 keeps the bare hash)
        check_stage_inputs(seed_dir, {"preset": preset.model_dump(mode="json"), "data": data.hash,
                                      "base_model": lm.client.answer_fingerprint})
        ctx = StrategyContext(domain=domain, lm=lm, trainset=trainset, valset=valset, preset=preset, seed=seed,
                              seed_dir=seed_dir, reflection_lm=reflection, console=console,
                              show_progress=show_progress)
        start = baseline(ctx, start_playbook)
        for config, steps in strategies.items():
            state = run_strategy(steps, ctx, start)
            manifest = ConfigManifest(
                **state.model_dump(), domain=domain.name, config=config, strategy=strategy_name(steps),
                preset=preset.name, seed=seed, base_model=base_model, data=data, total_cost=state.cost,
                package_versions=package_versions(MANIFEST_PACKAGES), created=datetime.now(timezone.utc),
                without_playbook_of=ablation_of.get(config),
            )
            save_relative(manifest, _config_dir(seed_dir, config) / MANIFEST_FILE)
            manifests.append(manifest)
    write_configurations(Path(run_dir), manifests)
    console.print(_summary(manifests))
    return manifests


def _optimize_one(domain: str, seed: int, options: dict[str, Any]) -> list[ConfigManifest]:
    return optimize(domain, seeds=[seed], console=Console(stderr=True, quiet=True), show_progress=False, **options)


def optimize_in_workers(jobs: Sequence[tuple[str, int]], *, workers: int, console: Console,
                        **options: Any) -> list[ConfigManifest]:
    """Run `optimize(domain, seeds=[seed], **options)` for each (domain, seed) job in `workers` processes.

    `options` are optimize's keyword arguments other than `lm` (each process loads `model`).
    Returns the manifests in job order; a failed job's error is raised once the other jobs have ended.
    """
    if options.get("lm") is not None:
        raise AxError("workers load one model per process from `model`; pass model=..., not lm=...")
    check_findable(sorted({domain for domain, _ in jobs}))

    def done(job: tuple[str, int], manifests: list[ConfigManifest], finished: int) -> None:
        console.print(f"{job[0]} seed {job[1]}: {len(manifests)} configurations optimized "
                      f"({finished} of {len(jobs)} jobs done)")

    results = run_in_workers(partial(_optimize_one, options=options), list(jobs), workers=workers, done=done)
    return [manifest for manifests in results for manifest in manifests]
