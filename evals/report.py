"""Build the evaluation report of a run directory from its stored responses.

``build_report`` reads only ``RUN_DIR/responses`` (no model): per domain it calibrates the
items on the whole respondent pool, compares the four configurations, checks adaptive
testing, and pools the synergy analysis over domains. ``ax.evals.render.write_report`` writes

    report.json      every number (the Report model below); the plots are drawn from it alone
    report.md        the same in Markdown
    report.html      a self-contained page: tables and plots as inline PNGs
    manifest.json    models, adapters, data digests, seeds, versions, and the commands

into the output directory (default ``RUN_DIR/report``).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from ax.errors import AxError
from ax.evals.adaptive_eval import AdaptiveCheck, adaptive_check
from ax.evals.calibration import MIN_RESPONDENTS_2PL, PoolCalibration, calibrate_pool
from ax.evals.comparison import LABELS_SHORT, Comparison, compare_domain, compare_pooled, outcome_against_best
from ax.evals.matrix_store import ResponseMatrix, ResponseStore
from ax.evals.provenance import Manifest, build_manifest

REPORT_DIR = "report"


class ReportSettings(BaseModel):
    """What the numbers depend on besides the stored responses; the reproducing command repeats them."""

    n_bootstrap: int = Field(2000, ge=100)
    seed: int = 0
    power_simulations: int = Field(200, ge=10)
    domains: list[str] = Field(default_factory=list)  # empty: every evaluated domain
    split: Literal["train", "dev", "test"] = "test"  # items of other splits answered into the store are left out

    def command(self, run_dir: Path, out: Path) -> str:
        words = ["ax", "report", str(run_dir), "--out", str(out), "--bootstrap", str(self.n_bootstrap),
                 "--seed", str(self.seed), "--power-simulations", str(self.power_simulations), "--split", self.split]
        for domain in self.domains:
            words += ["--domain", domain]
        return shlex.join(words)


class ItemSummary(BaseModel):
    id: str
    rated_difficulty: str | None
    share_correct: float | None
    difficulty: float | None
    discrimination: float | None
    infit: float | None
    outfit: float | None


class RespondentSummary(BaseModel):
    name: str
    role: str
    cell: str
    seed: int
    answered: int
    accuracy: float | None
    ability: float | None  # None when the domain's items could not be calibrated
    ability_se: float | None


class CalibrationSummary(BaseModel):
    domain: str
    irt_model: str
    respondents: int
    min_respondents_2pl: int
    converged: bool
    uninformative: list[str]
    misfitting: list[str]
    note: str
    items: list[ItemSummary]
    pool: list[RespondentSummary]


class Report(BaseModel):
    created: datetime
    run_dir: str
    command: str
    settings: ReportSettings
    summary: list[str]
    calibrations: list[CalibrationSummary]
    comparisons: list[Comparison]
    pooled: Comparison | None
    adaptive: list[AdaptiveCheck]
    manifest: Manifest


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarize_calibration(matrix: ResponseMatrix, pool: PoolCalibration | None, rated: dict[str, str | None],
                          problem: str = "") -> CalibrationSummary:
    """The calibration in report form; ``pool`` is None when the items could not be calibrated (``problem``: why)."""
    nothing = np.full(len(matrix.item_ids), np.nan)
    items = pool.calibration.items if pool else None
    with np.errstate(invalid="ignore"):
        shares = np.nanmean(matrix.correct, axis=0)
        accuracy = np.nanmean(matrix.correct, axis=1)
    answered = (~np.isnan(matrix.correct)).sum(axis=1)
    if pool is None:
        note = f"No IRT calibration: {problem.rstrip('.')}. Abilities are left out; accuracies stand alone."
    elif pool.model == "1pl":
        note = (f"1PL: fewer than {MIN_RESPONDENTS_2PL} respondents, too few to estimate item discriminations. "
                "Ability then orders respondents who answered the same items exactly as accuracy does; it adds a "
                "common scale with standard errors, not a different ranking.")
    else:
        note = (f"2PL: at least {MIN_RESPONDENTS_2PL} respondents, enough to estimate each item's discrimination; "
                "ability weighs the discriminating items more and can rank differently from accuracy.")
    return CalibrationSummary(
        domain=matrix.domain, irt_model=pool.model if pool else "none", respondents=len(matrix.respondents),
        min_respondents_2pl=MIN_RESPONDENTS_2PL, converged=bool(pool and pool.calibration.converged),
        uninformative=[f"{matrix.item_ids[u.index]} ({u.reason})"
                       for u in (pool.calibration.uninformative if pool else ())],
        misfitting=pool.misfitting_items() if pool else [], note=note,
        items=[ItemSummary(id=item, rated_difficulty=rated.get(item), share_correct=_finite(shares[j]),
                           difficulty=_finite((items.difficulty if pool else nothing)[j]),
                           discrimination=_finite((items.discrimination if pool else nothing)[j]),
                           infit=_finite((pool.fit.infit if pool else nothing)[j]),
                           outfit=_finite((pool.fit.outfit if pool else nothing)[j]))
               for j, item in enumerate(matrix.item_ids)],
        pool=[RespondentSummary(name=c.name, role=c.role, cell=c.cell, seed=c.seed, answered=int(answered[i]),
                                accuracy=_finite(accuracy[i]),
                                ability=float(pool.ability.theta[i]) if pool else None,
                                ability_se=float(pool.ability.standard_error[i]) if pool else None)
              for i, c in enumerate(matrix.respondents)])


def _summary_line(comparison: Comparison) -> str:
    """One line per domain: floors and flags first, then the combination against the best single method,
    the interaction and the power; differences of copied arms are named, not given as numbers."""
    label = "Pooled over domains" if comparison.domain == "pooled" else comparison.domain
    verdict, result, floors = comparison.verdict, comparison.synergy, comparison.floors
    lead = []
    if floors is not None:
        lead.append(f"majority floor {100 * floors.majority:.1f}%"
                    + (f", chance {100 * floors.chance:.1f}%" if floors.chance else ""))
    lead += [f"{LABELS_SHORT[c.cell]} {', '.join(c.flags)}" for c in comparison.cells if c.flags]
    lead += [f"{r.name} (adaptive) {', '.join(r.flags)}" for r in comparison.adaptive if r.flags]
    head = f"{label} ({'; '.join(lead)})" if lead else label
    if verdict.combination_minus_best is None:
        about = next((s for s in verdict.sentences if s.startswith(("LoRA+GEPA reached", "Cells"))), "")
        line = f"{head}: {about}"
        if comparison.adaptive:
            line = (f"{line.rstrip('.')}; {len(comparison.adaptive)} run(s) scored adaptively: "
                    + ", ".join(f"{r.name} {100 * r.accuracy.estimate:.1f}% ± {100 * r.estimate.accuracy_standard_error:.1f}"
                                for r in comparison.adaptive) + " (forecasts from part of the items)")
    else:
        d = verdict.combination_minus_best
        best = LABELS_SHORT[verdict.best_single]
        line = (f"{head}: LoRA+GEPA {outcome_against_best(d)} the best single method ({best}): "
                f"{100 * d.estimate:+.1f} points [{100 * d.low:+.1f}, {100 * d.high:+.1f}]")
    if result is None:
        return line.rstrip(".") + "."
    if result.not_measured:
        return f"{line.rstrip('.')}; synergy {result.not_measured}."
    line = line.rstrip(".") + (
        f"; interaction {verdict.interaction} ({result.logit.estimate:+.2f} logits "
        f"[{result.logit.low:+.2f}, {result.logit.high:+.2f}]); power {100 * result.power.power:.0f}% "
        f"for a {result.power.effect_logit}-logit interaction")
    if not result.captures_run_variance:
        line += "; one run per cell: synergy cannot be told apart from run-to-run variance"
    return line + "."


def build_report(run_dir: str | Path, settings: ReportSettings | None = None, *, out: Path | None = None) -> Report:
    """Everything the report says, computed from ``run_dir``'s stored responses."""
    settings = settings or ReportSettings()
    run_dir = Path(run_dir)
    store = ResponseStore(run_dir)
    available = store.domains()
    if not available:
        raise AxError(f"{store.root} holds no evaluated domain (run `ax evaluate --run-dir {run_dir} ...` first)")
    unknown = [d for d in settings.domains if d not in available]
    if unknown:
        raise AxError(f"{run_dir} has no responses for domain(s) {', '.join(unknown)}; it has {', '.join(available)}")
    domains = settings.domains or available
    options = dict(n_bootstrap=settings.n_bootstrap, seed=settings.seed, power_simulations=settings.power_simulations)
    calibrations, comparisons, adaptive, matrices = [], [], [], []
    for domain in domains:
        matrix = store.matrix(domain, settings.split)
        try:
            pool, problem = calibrate_pool(matrix), ""
        except AxError as error:  # e.g. every item answered alike by all: accuracies still stand
            pool, problem = None, str(error)
        rated = {item.id: item.difficulty for item in store.items(domain)}
        calibrations.append(summarize_calibration(matrix, pool, rated, problem))
        comparisons.append(compare_domain(matrix, pool, **options).model_copy(
            update={"split": store.split_of(domain, settings.split)}))
        check = adaptive_check(matrix) if pool else None
        if check is not None:
            adaptive.append(check)
        matrices.append(matrix)
    pooled = compare_pooled(matrices, **options)
    command = settings.command(run_dir, out or run_dir / REPORT_DIR)
    return Report(created=datetime.now(timezone.utc), run_dir=str(run_dir), command=command, settings=settings,
                  summary=[_summary_line(c) for c in ([pooled] if pooled else []) + comparisons],
                  calibrations=calibrations, comparisons=comparisons,
                  pooled=pooled, adaptive=adaptive, manifest=build_manifest(store, domains, command))
