"""Sweeps over LoRA settings (weight decay, rank, target modules) across seeds, with 95% intervals.

The sweep owns only the bookkeeping: which config each run gets, the seeds, saving each result
as it arrives (so a crashed sweep resumes where it stopped) and the per-setting mean with a
t-interval. Training and scoring are callables supplied by the caller, so the same machinery
runs on a toy in tests and on real domains with the real evaluator. Nothing is assumed about
which setting wins; the seed document's weight-decay claim is exactly what this measures.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ax.adapters.config import LoraTrainingConfig
from ax.errors import AxError
from ax.model import atomic_write_text

DEFAULT_WEIGHT_DECAYS = (1e-2, 1e-3, 1e-4, 1e-5, 0.0)
DEFAULT_RANKS = (4, 8, 16, 32, 64)
DEFAULT_TARGET_SETS: dict[str, Any] = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
    "all": "auto",
}
KINDS = ("weight-decay", "rank", "target-modules")  # what `sweep_settings` can sweep


class SweepSetting(BaseModel):
    """One point of a sweep: a name and the config keys it changes."""

    name: str
    overrides: dict[str, Any]


class RunRecord(BaseModel):
    setting: str
    seed: int
    score: float
    wall_time_s: float


class SettingSummary(BaseModel):
    """Mean score of a setting over seeds, with a 95% t-interval (NaN-free: one seed gives a zero-width interval)."""

    setting: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


class SweepReport(BaseModel):
    runs: list[RunRecord] = Field(default_factory=list)
    summaries: list[SettingSummary] = Field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'setting':<24} {'n':>3} {'mean':>9} {'95% CI':>21}"]
        for s in self.summaries:
            lines.append(f"{s.setting:<24} {s.n:>3} {s.mean:>9.4f} [{s.ci_low:>9.4f}, {s.ci_high:>9.4f}]")
        return "\n".join(lines)


def weight_decay_settings(values: Iterable[float] = DEFAULT_WEIGHT_DECAYS) -> list[SweepSetting]:
    return [SweepSetting(name=f"weight_decay={v:g}", overrides={"weight_decay": v}) for v in values]


def rank_settings(ranks: Iterable[int] = DEFAULT_RANKS, alpha_ratio: float | None = None) -> list[SweepSetting]:
    """Ranks to compare; alpha follows as alpha_ratio * r, or stays the base config's with None.

    The sweep should change the rank and nothing else, so which one is right depends on the
    scaling: rsLoRA multiplies by alpha / sqrt(r), rank-stable with alpha fixed (None), while plain
    LoRA's alpha / r stays constant only when alpha grows with r (see `rank_sweep_alpha_ratio`).
    """
    settings = []
    for r in ranks:
        overrides: dict[str, Any] = {"r": r}
        if alpha_ratio is not None:
            overrides["lora_alpha"] = alpha_ratio * r
        settings.append(SweepSetting(name=f"r={r}", overrides=overrides))
    return settings


def rank_sweep_alpha_ratio(config: LoraTrainingConfig) -> float | None:
    """The alpha rule that keeps `config`'s LoRA scale while a rank sweep changes r.

    With alpha = 2r under rsLoRA the scale grew as 2 sqrt(r): on SmolLM2 r=4 learned nothing and
    r=64 fell back to the base model's accuracy, an effect of the scale, not of the rank.
    """
    return None if config.use_rslora else config.lora_alpha / config.r


def target_module_settings(sets: Mapping[str, Any] = DEFAULT_TARGET_SETS) -> list[SweepSetting]:
    return [SweepSetting(name=f"targets={name}", overrides={"target_modules": modules}) for name, modules in sets.items()]


def sweep_settings(kind: str, values: str | None = None,
                   config: LoraTrainingConfig | None = None) -> list[SweepSetting]:
    """The settings of a sweep kind over `config` (the shipped defaults if None): its defaults, or `values`.

    `values` is comma-separated: weight-decay takes numbers, rank takes integers (alpha as
    `rank_sweep_alpha_ratio` says), target-modules takes set names (attention, mlp, all) or module
    names joined with '+', e.g. q_proj+v_proj.
    """
    if kind not in KINDS:
        raise AxError(f"sweep kind {kind!r}: choose one of {', '.join(KINDS)}")
    parts = [part.strip() for part in (values or "").split(",") if part.strip()]
    if values is not None and not parts:
        raise AxError(f"--values {values!r}: give at least one value")
    try:
        if kind == "weight-decay":
            return weight_decay_settings([float(part) for part in parts] or DEFAULT_WEIGHT_DECAYS)
        if kind == "rank":
            ratio = rank_sweep_alpha_ratio(config or LoraTrainingConfig())
            return rank_settings([int(part) for part in parts] or DEFAULT_RANKS, ratio)
    except ValueError:
        wanted = "numbers" if kind == "weight-decay" else "integers"
        raise AxError(f"--values {values!r}: a {kind} sweep takes comma-separated {wanted}") from None
    sets = {part: DEFAULT_TARGET_SETS.get(part, part.split("+")) for part in parts} or DEFAULT_TARGET_SETS
    return target_module_settings(sets)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample std, low, high) with Student's t; one value gives a zero-width interval."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0, mean, mean
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def summarize(runs: Sequence[RunRecord], order: Sequence[str]) -> list[SettingSummary]:
    summaries = []
    for name in order:
        scores = [r.score for r in runs if r.setting == name]
        if scores:
            mean, std, low, high = confidence_interval(scores)
            summaries.append(SettingSummary(setting=name, n=len(scores), mean=mean, std=std, ci_low=low, ci_high=high))
    return summaries


def run_sweep(base_config: LoraTrainingConfig, settings: Sequence[SweepSetting], seeds: Sequence[int], *,
              train_fn: Callable[[LoraTrainingConfig], Any], eval_fn: Callable[[Any], float],
              results_path: str | Path | None = None) -> SweepReport:
    """Train and score every setting under every seed; `train_fn(config)` returns what `eval_fn` scores.

    Each run's config is `base_config` with the setting's overrides and `seed`. With
    `results_path`, every finished run is saved at once and runs already there are skipped.
    """
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise AxError(f"Sweep settings need distinct names, got {names}.")
    path = Path(results_path) if results_path is not None else None
    runs = _load_runs(path) if path is not None and path.exists() else []
    done = {(r.setting, r.seed) for r in runs}
    for setting in settings:
        config = base_config.with_overrides(**setting.overrides)
        for seed in seeds:
            if (setting.name, seed) in done:
                continue
            started = time.perf_counter()
            score = float(eval_fn(train_fn(config.with_overrides(seed=seed))))
            runs.append(RunRecord(setting=setting.name, seed=seed, score=score,
                                  wall_time_s=time.perf_counter() - started))
            if path is not None:
                atomic_write_text(path, json.dumps([r.model_dump() for r in runs], indent=1))
    wanted = [r for r in runs if r.setting in names and r.seed in seeds]
    return SweepReport(runs=wanted, summaries=summarize(wanted, names))


def _load_runs(path: Path) -> list[RunRecord]:
    try:
        return [RunRecord.model_validate(r) for r in json.loads(path.read_text())]
    except (OSError, ValueError) as exc:
        raise AxError(f"Sweep results file {path} is unreadable ({exc}); move it away to start afresh.") from None
