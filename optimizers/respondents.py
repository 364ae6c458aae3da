"""The run directory's `configurations.json`: every program variant the evaluator should answer with.

The evaluator reads one `ConfigurationSet` per run directory. The
optimized configurations are its `comparison` respondents, placed in the LoRA x GEPA design by
what they hold (an adapter; a GEPA step). Every other candidate a GEPA stage evaluated on its
frontier becomes a `calibration` respondent: the stage's program file with that candidate's
instructions, under the adapter and playbook GEPA ran with. The IRT item model needs on the
order of a hundred respondents; four configurations alone give it almost nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ax.configuration import CONFIGURATIONS_FILE, Configuration, ConfigurationSet, StepInfo, load_configurations
from ax.locking import locked
from ax.optimizers.gepa_run import OUTCOME_FILE, GepaOutcome
from ax.optimizers.manifest import Artifacts, ConfigManifest, StepRecord, load_relative
from ax.optimizers.run_files import read_json, relative_path, write_json
from ax.optimizers.strategies import STAGE_FILE, parse_strategy
from ax.optimizers.tracking import FRONTIER_FILE, Frontier

COMPARISON_CONFIGS = ("baseline", "lora", "gepa", "combined")


def _name(text: str) -> str:
    return text.replace("->", "-")


def _number(value: Any, digits: int = 3) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def step_info(step: StepRecord, manifest: ConfigManifest) -> StepInfo:
    """A step's own account of what it did, from its summary and its stage's files, for the report."""
    summary = step.summary
    if step.step == "gepa":
        outcome_file = step.stage_dir / OUTCOME_FILE
        outcome = read_json(outcome_file, GepaOutcome) if outcome_file.is_file() else None
        changed = outcome.best_index != 0 if outcome else bool(summary.get("accepted"))
        reasons = f"; {' '.join(outcome.stall.reasons)}" if outcome and outcome.stall.reasons else ""
        proposer = f" by the {outcome.proposer} proposer" if outcome else ""
        # A multi-predictor program: which instructions changed and what each gained on validation.
        predictors = outcome.predictor_summary() if outcome and len(outcome.predictors) > 1 else ""
        return StepInfo(step="gepa", changed=changed, detail=(
            f"{summary.get('proposals', '?')} proposals{proposer}, {summary.get('accepted', '?')} accepted; validation "
            f"{_number(summary.get('seed_val_score'), 2)} -> {_number(summary.get('best_val_score'), 2)}; "
            + (predictors or ("program changed" if changed else "the seed program was kept")) + reasons))
    if step.step == "lora" and manifest.predictor_adapters:
        parts = [f"{name}: {part.get('train_pairs', '?')} pairs, mean loss {_number(part.get('train_loss'))}"
                 + (" (copied)" if part.get("copied_from") else "")
                 for name, part in summary.get("predictors", {}).items()]
        return StepInfo(step="lora", changed=True, detail=(
            f"one adapter per predictor, {summary.get('train_pairs', '?')} training pairs: " + "; ".join(parts)))
    if step.step == "lora":
        metrics = manifest.adapter.metrics if manifest.adapter else {}
        copied = summary.get("copied_from")
        balance = manifest.adapter.label_balance if manifest.adapter else None
        balanced = (f"; labels balanced from {dict(balance.before)} to {dict(balance.after)}"
                    if balance and balance.before != balance.after else "")
        return StepInfo(step="lora", changed=True, detail=(
            f"{summary.get('train_pairs', '?')} training pairs, {metrics.get('steps', '?')} steps, loss "
            f"{_number(metrics.get('first_loss'))} -> {_number(metrics.get('last_loss'))} (mean "
            f"{_number(metrics.get('train_loss'))})" + (f"; adapter copied from {copied} (the same training data)"
                                                        if copied else "; adapter trained") + balanced))
    tokens = manifest.playbook.tokens if manifest.playbook and step.step == manifest.steps[-1].step else None
    return StepInfo(step=step.step, changed=bool(summary.get("bullets")), detail=(
        f"playbook of {summary.get('bullets', '?')} bullets" + (f", {tokens} tokens" if tokens is not None else "")
        + (f", adapted on {summary['train_items']} train items" if "train_items" in summary else "")
        + (f"; copied from stage {summary['copied_from']} (the same program, playbook, adapter and items)"
           if summary.get("copied_from") else "")))


def comparison(manifest: ConfigManifest) -> Configuration:
    return manifest.configuration(
        manifest.domain, f"{_name(manifest.config)}-s{manifest.seed}", seed=manifest.seed,
        gepa="gepa" in parse_strategy(manifest.strategy),
        role="comparison" if manifest.config in COMPARISON_CONFIGS else "calibration",
        source=f"configuration {manifest.config!r} ({manifest.strategy or 'no optimization'}), seed {manifest.seed}",
        steps=tuple(step_info(step, manifest) for step in manifest.steps),
        without_playbook_of=(f"{_name(manifest.without_playbook_of)}-s{manifest.seed}"
                             if manifest.without_playbook_of else None),
    )


def gepa_candidates(stage_dir: Path, domain: str, seed: int) -> list[Configuration]:
    """The candidates of a finished GEPA stage other than its seed (the stage's input) and its best (its output)."""
    frontier = read_json(stage_dir / FRONTIER_FILE, Frontier)
    state = load_relative(stage_dir / STAGE_FILE, Artifacts)
    skip = {0, frontier.best}
    return [
        state.configuration(
            domain, f"{stage_dir.name}-s{seed}-c{candidate.index}", seed=seed, role="calibration", gepa=True,
            # GEPA names a playbook-wrapped program's predictors "program.<name>"; the evaluator wraps after loading.
            instructions={name.removeprefix("program."): text for name, text in candidate.instructions.items()},
            source=f"GEPA candidate {candidate.index} (val {candidate.val_score:.3f}) of {stage_dir}",
        )
        for candidate in frontier.candidates if candidate.index not in skip
    ]


def write_configurations(run_dir: Path, manifests: list[ConfigManifest]) -> Path:
    """Add the manifests' configurations and their GEPA candidates to `run_dir/configurations.json`.

    Entries already there for other domains or seeds are kept; ones with the same name are replaced.
    The file is read, merged and written under an exclusive lock, so concurrent `ax compare` or
    `ax optimize` runs on one run directory each keep the others' entries.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIGURATIONS_FILE
    new: dict[tuple[str, str], Configuration] = {}
    for manifest in manifests:
        new[manifest.domain, comparison(manifest).name] = comparison(manifest)
        gepa_stages = {step.stage_dir for step in manifest.steps if step.step == "gepa"}
        for stage_dir in sorted(gepa_stages):
            for candidate in gepa_candidates(stage_dir, manifest.domain, manifest.seed):
                new[candidate.domain, candidate.name] = candidate

    with locked(run_dir / f".{CONFIGURATIONS_FILE}.lock"):
        stored = load_configurations(path).configurations if path.is_file() else []
        entries = {**{(c.domain, c.name): c for c in stored}, **new}
        # Grouped by domain and seed (in the order each seed's run wrote them), whichever seed finished first.
        ordered = sorted(entries.values(), key=lambda c: (c.domain, c.seed))
        relative = [c.moved(lambda p: relative_path(p, run_dir)) for c in ordered]
        write_json(path, ConfigurationSet(configurations=relative))
    return path
