"""The 2x2 comparison of one domain (and pooled over domains): what a skeptical reader needs to see.

Per configuration (cell): accuracy and IRT ability with 95% intervals. With one run per cell
the accuracy interval is Wilson's; with several runs it is a run-level bootstrap (runs within
the cell, then items), because seeds vary and an item-only interval would ignore that. A
cell's ability is the mean of its runs' abilities; its variance adds the runs' measurement
error and the between-run variance (method of moments, floored at 0) over the number of runs.

Pairwise: every pair of cells, run against run with the same seed (a single-run cell, such as
a deterministic baseline, pairs with every run of the other), by a paired item bootstrap and
the exact McNemar test, Holm-corrected over all pairwise tests of the domain.

Synergy is the interaction contrast (lora+gepa) - lora - gepa + baseline. The logit-scale
contrast defines it: accuracy is bounded, so two methods that each add a fixed amount of
log-odds look sub-additive in accuracy points near the ceiling (and super-additive near the
floor) without interacting at all; the log-odds scale is also the one the mixed model tests
and the power analysis simulates. The accuracy-scale contrast is reported beside it as the
points gained beyond additivity. Its interval comes from the run-level hierarchical
bootstrap, its test from the logistic mixed model ``correct ~ lora * gepa + (1|item) + (1|run)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, field_validator

from ax.configuration import CELL_NAMES, Configuration
from ax.errors import AxError
from ax.evals.adaptive import GOAL_ERROR, MIN_ADAPTIVE_ITEMS
from ax.evals.calibration import PoolCalibration
from ax.evals.classification import (
    DEGENERATE_SHARE, ClassMetrics, Floors, answer_distribution, class_metrics, domain_floors, macro_f1_replicates,
)
from ax.evals.matrix_store import CORRECT_AT, AdaptiveEstimate, ResponseMatrix
from ax.programs.metrics import normalize_label
from ax.evals.stats import (
    CELLS,
    FactorialResponses,
    Interval,
    hierarchical_bootstrap_interaction,
    holm_adjust,
    interaction_power,
    mcnemar_exact,
    mixed_model_interaction,
    paired_bootstrap_difference,
    wilson_interval,
)

POWER_EFFECT_LOGIT = 0.5
ALPHA = 0.05


class Estimate(BaseModel):
    """A point estimate with its 95% interval."""

    estimate: float
    low: float
    high: float

    @field_validator("estimate", "low", "high")
    @classmethod
    def _no_negative_zero(cls, value: float) -> float:
        """Identical runs give differences of -1e-17, which the report would print as "-0.00"."""
        return 0.0 if abs(value) < 1e-12 else value

    @classmethod
    def of(cls, interval: Interval) -> Estimate:
        return cls(estimate=interval.estimate, low=interval.low, high=interval.high)

    def excludes_zero(self) -> bool:
        return not self.low <= 0.0 <= self.high


class RunResult(BaseModel):
    name: str
    seed: int
    accuracy: Estimate  # Wilson
    ability: float | None  # None when pooled over domains
    ability_se: float | None
    classes: ClassMetrics | None = None  # classification domains whose store recorded the gold labels
    steps: list[str] = []  # what each optimization step did, one line each


class CellResult(BaseModel):
    cell: str
    runs: list[RunResult]
    accuracy: Estimate
    accuracy_method: Literal["wilson", "run-level bootstrap"]
    ability: Estimate | None  # None when pooled over domains: each domain has its own ability scale
    classes: ClassMetrics | None = None  # the runs' answers pooled
    top_answer: str | None = None  # the most common answer over the runs, and its share
    top_share: float | None = None
    flags: list[str] = []  # "degenerate", "identical_to:<cell>", "gepa_unchanged"
    flag_reasons: list[str] = []


class AdaptiveRun(BaseModel):
    """A comparison run scored adaptively (``ax compare/evaluate --adaptive``): its stored estimate, the accuracy
    over every test item as an interval (the estimate +- 1.96 SE, clipped to [0, 1]), and its flags."""

    name: str
    cell: str
    seed: int
    accuracy: Estimate
    estimate: AdaptiveEstimate
    top_answer: str | None = None  # over the items asked
    top_share: float | None = None
    flags: list[str] = []  # "degenerate", "gepa_unchanged", "adaptive_off_goal", "adaptive_unchecked"
    flag_reasons: list[str] = []


class PairwiseResult(BaseModel):
    """accuracy(a) - accuracy(b) for one seed-matched pair of runs, on the items both answered.

    ``not_measured`` says why a pair has no numbers: the two runs are the same arm (identical
    program text, adapter weights and playbook), or the step that tells them apart did nothing.
    """

    a: str
    b: str
    run_a: str
    run_b: str
    difference: Estimate | None
    only_a_correct: int | None
    only_b_correct: int | None
    p_value: float | None
    p_holm: float | None
    not_measured: str | None = None


class ClassContrast(BaseModel):
    """A macro-F1 contrast between cells (runs pooled), with its paired item bootstrap interval."""

    contrast: str  # "lora - baseline", ..., or "synergy" for (lora+gepa) - lora - gepa + baseline
    macro_f1: Estimate | None
    not_measured: str | None = None


class PlaybookContrast(BaseModel):
    """What the playbook adds to one cell: its runs answering with their playbook minus the same runs without it."""

    cell: str
    runs: int
    with_playbook: float  # accuracy, runs pooled
    without_playbook: float
    difference: Estimate | None  # paired per run and item; items and runs resampled
    not_measured: str | None = None


class StepAccuracy(BaseModel):
    """How often one step of a multi-step program was right in one cell (runs pooled; an unparsed answer counts 0)."""

    cell: str
    step: str
    accuracy: Estimate  # Wilson for one run, else the run-level bootstrap the cell accuracy uses


class MixedModelResult(BaseModel):
    estimate: float
    posterior_sd: float
    p_value: float
    item_sd: float
    run_sd: float


class PowerResult(BaseModel):
    effect_logit: float
    n_items: int
    runs_per_cell: int
    power: float
    standard_error: float
    n_simulations: int


class SynergyResult(BaseModel):
    """The interaction contrast; ``not_measured`` (and no numbers) when two of the arms it needs are the same."""

    logit: Estimate | None
    accuracy: Estimate | None
    runs_per_cell: dict[str, int]
    captures_run_variance: bool
    mixed: MixedModelResult | None
    mixed_error: str | None
    power: PowerResult
    not_measured: str | None = None


class Verdict(BaseModel):
    best_single: str | None
    combination_minus_best: Estimate | None
    combination_beats_best: bool | None
    interaction: Literal["differs from zero", "not detected", "conflicting"] | None
    sentences: list[str]


class Comparison(BaseModel):
    """One domain's comparison, or the pooled one (``domain == "pooled"``)."""

    domain: str
    items: int
    cells: list[CellResult]
    pairwise: list[PairwiseResult]
    synergy: SynergyResult | None
    verdict: Verdict
    missing_cells: list[str]
    excluded: list[str]
    floors: Floors | None = None  # None when the store holds no gold answers (written by an older ax)
    split: str | None = None  # the split whose items these are; None: a store that recorded no splits
    class_contrasts: list[ClassContrast] = []
    playbook: list[PlaybookContrast] = []  # runs with `<config>-no-playbook` twins (ablate_context)
    steps: list[StepAccuracy] = []  # multi-step programs: each step's accuracy per cell
    adaptive: list[AdaptiveRun] = []  # comparison runs scored on the items adaptive testing picked


# --------------------------------------------------------------------------- cells


def cell_bootstrap(cells: dict[str, np.ndarray], *, n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """Pooled-accuracy replicates per cell: items drawn once per replicate for all cells, runs within each.

    ``cells`` maps a cell to its runs x items matrix (1/0, NaN = not answered) on a common item
    index. Drawing items jointly keeps the cells paired, so differences of replicates are valid
    replicates of differences.
    """
    rng = np.random.default_rng(seed)
    n_items = next(iter(cells.values())).shape[1]
    item_weights = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_bootstrap)
    replicates = {}
    for name, matrix in cells.items():
        runs = matrix.shape[0]
        run_weights = rng.multinomial(runs, np.full(runs, 1 / runs), size=n_bootstrap)
        correct = np.sum((run_weights @ np.nan_to_num(matrix)) * item_weights, axis=1)
        seen = np.sum((run_weights @ (~np.isnan(matrix)).astype(float)) * item_weights, axis=1)
        replicates[name] = correct / np.maximum(seen, 1.0)
    return replicates


def _percentile(estimate: float, replicates: np.ndarray) -> Estimate:
    low, high = np.quantile(replicates, [ALPHA / 2, 1 - ALPHA / 2])
    return Estimate(estimate=float(estimate), low=float(low), high=float(high))


def _pooled_accuracy(matrix: np.ndarray) -> float:
    return float(np.nansum(matrix) / np.sum(~np.isnan(matrix)))


def _cell_ability(runs: list[RunResult]) -> Estimate:
    """Mean run ability; variance = (mean squared SE + between-run variance) / runs, normal interval."""
    theta = np.array([r.ability for r in runs])
    se2 = np.array([r.ability_se for r in runs]) ** 2
    between = max(0.0, float(np.var(theta, ddof=1)) - float(se2.mean())) if theta.size > 1 else 0.0
    se = float(np.sqrt((se2.mean() + between) / theta.size))
    return Estimate(estimate=float(theta.mean()), low=float(theta.mean() - 1.96 * se),
                    high=float(theta.mean() + 1.96 * se))


def _cell_results(cells: dict[str, np.ndarray], runs: dict[str, list[tuple[str, int]]],
                  calibration: PoolCalibration | None, replicates: dict[str, np.ndarray],
                  truth: Truth | None = None) -> list[CellResult]:
    """Per cell: each run's Wilson accuracy and ability, the cell's accuracy and ability intervals.

    ``runs`` gives (name, seed) per row of each cell's matrix; without ``calibration`` (pooled
    over domains) abilities are None. With ``truth`` (one domain whose gold answers are stored),
    each run and cell also gets its answer distribution and, for classification, per-class metrics.
    """
    results = []
    for cell, matrix in cells.items():
        run_results = []
        for (name, seed), row in zip(runs[cell], matrix):
            answered = row[~np.isnan(row)]
            theta, se = calibration.ability_of(name) if calibration else (None, None)
            run_results.append(RunResult(
                name=name, seed=seed, ability=theta, ability_se=se,
                accuracy=Estimate.of(wilson_interval(int(answered.sum()), answered.size)),
                classes=truth.classes([name]) if truth else None, steps=truth.steps(name) if truth else []))
        if matrix.shape[0] == 1:
            accuracy, method = run_results[0].accuracy, "wilson"
        else:
            accuracy, method = _percentile(_pooled_accuracy(matrix), replicates[cell]), "run-level bootstrap"
        names = [name for name, _seed in runs[cell]]
        top, share = truth.top_answer(names) if truth else (None, None)
        results.append(CellResult(cell=cell, runs=run_results, accuracy=accuracy, accuracy_method=method,
                                  ability=_cell_ability(run_results) if calibration else None,
                                  classes=truth.classes(names) if truth else None, top_answer=top, top_share=share))
    return results


def step_matrix(matrix: ResponseMatrix, rows: Sequence[int], step: str) -> np.ndarray:
    """One step right (1) or not (0), runs x items: NaN where unanswered, 0 where the answer did not parse."""
    column = {item: j for j, item in enumerate(matrix.item_ids)}
    scores = np.where(np.isnan(matrix.correct[list(rows)]), np.nan, 0.0)
    for i, row in enumerate(rows):
        for item, steps in matrix.steps[row].items():
            if item in column and step in steps:
                scores[i, column[item]] = float(steps[step] >= CORRECT_AT)
    return scores


def step_accuracies(matrix: ResponseMatrix, by_cell: dict[str, list[int]], *, n_bootstrap: int,
                    seed: int) -> list[StepAccuracy]:
    """Each step's accuracy per cell, for domains whose metric scores steps (empty otherwise)."""
    names = list(dict.fromkeys(step for rows in by_cell.values() for row in rows if row < len(matrix.steps)
                               for scores in matrix.steps[row].values() for step in scores))
    out = []
    for cell, rows in by_cell.items():
        for step in names:
            right = step_matrix(matrix, rows, step)
            answered = right[~np.isnan(right)]
            accuracy = (Estimate.of(wilson_interval(int(answered.sum()), answered.size)) if len(rows) == 1 else
                        _percentile(_pooled_accuracy(right),
                                    cell_bootstrap({step: right}, n_bootstrap=n_bootstrap, seed=seed)[step]))
            out.append(StepAccuracy(cell=cell, step=step, accuracy=accuracy))
    return out


# --------------------------------------------------------------------------- floors, answers, flags


@dataclass(frozen=True)
class Truth:
    """One domain's gold answers and every respondent's answers, in the form the floors compare them.

    Classification compares the first label field, normalized as the metric normalizes labels;
    other tasks compare all gold fields together (the floor is then the best constant answer).
    """

    matrix: ResponseMatrix
    floors: Floors
    gold: list[str]
    answers: dict[str, list[str | None]]  # respondent name -> its answer per item (None: no parsed output)

    @classmethod
    def of(cls, matrix: ResponseMatrix) -> Truth | None:
        task = matrix.task
        if task is None or any(item not in matrix.gold for item in matrix.item_ids):
            return None
        if task.task == "classification":
            field = task.label_fields[0]

            def key(values: dict[str, Any] | None) -> str | None:
                return normalize_label(values[field]) if values and field in values else None

            labels = [normalize_label(label) for label in task.labels] if task.labels else None
        else:
            field, labels = None, None

            def key(values: dict[str, Any] | None) -> str | None:
                return " / ".join(str(values.get(name)) for name in task.label_fields) if values else None

        gold = [key(matrix.gold[item]) for item in matrix.item_ids]
        if task.task == "classification" and labels is None:
            labels = sorted(set(gold))
        answers = {c.name: [key(outputs.get(item)) for item in matrix.item_ids]
                   for c, outputs in zip(matrix.respondents, matrix.outputs)}
        return cls(matrix, domain_floors(gold, label_field=field, labels=labels), gold, answers)

    def classes(self, names: list[str]) -> ClassMetrics | None:
        if self.floors.labels is None:
            return None
        return class_metrics(self.gold * len(names), [a for name in names for a in self.answers[name]],
                             self.floors.labels)

    def top_answer(self, names: list[str], columns: Sequence[int] | None = None) -> tuple[str, float]:
        """The most common answer of these runs and its share, over the items at ``columns`` (default every item)."""
        answers = [self.answers[name] if columns is None else [self.answers[name][j] for j in columns]
                   for name in names]
        return answer_distribution([str(a) if a is not None else "(no answer)" for run in answers for a in run])

    def steps(self, name: str) -> list[str]:
        configuration = next(c for c in self.matrix.respondents if c.name == name)
        return [f"{s.step}: {s.detail}" for s in configuration.steps]


def _unchanged_gepa(configuration: Configuration) -> str | None:
    """Why the run's GEPA step changed nothing, or None (it changed the program, or there was none)."""
    return next((s.detail for s in configuration.steps if s.step == "gepa" and not s.changed), None)


def not_measured(matrix: ResponseMatrix, run_a: int, run_b: int) -> str | None:
    """Why two runs' difference is no measurement: the same arm twice, or told apart only by a step that did nothing."""
    a, b = matrix.respondents[run_a], matrix.respondents[run_b]
    if matrix.identities and matrix.identities[run_a] == matrix.identities[run_b]:
        return "identical arms (same program text, adapter weights, playbook and model)"
    gepa_only = a.lora == b.lora and a.gepa and not b.gepa
    if gepa_only and (why := _unchanged_gepa(a)):
        return f"the GEPA step of {a.name} changed nothing ({why})"
    return None


def degenerate_reasons(top_answer: str | None, top_share: float | None, accuracy: Estimate, floors: Floors | None,
                       *, adaptive: bool = False) -> list[str]:
    """Why a cell or an adaptively scored run is degenerate: one answer for most items (of those asked, when
    ``adaptive``), or an accuracy interval reaching down to the majority floor; empty when neither."""
    reasons = []
    if top_share is not None and top_share >= DEGENERATE_SHARE:
        reasons.append(f"answers {top_answer!r} for {top_share:.0%} of the items{' asked' if adaptive else ''}")
    if floors is not None and accuracy.low <= floors.majority:
        reasons.append(f"{'estimated ' if adaptive else ''}accuracy {_share(accuracy)} does not beat the majority "
                       f"floor {100 * floors.majority:.1f}% (always {floors.majority_answer!r})")
    return reasons


def cell_flags(cell: CellResult, floors: Floors | None, identical_to: str | None,
               configurations: list[Configuration]) -> CellResult:
    """The cell with its flags: degenerate (one answer, or no better than the floor), identical, GEPA did nothing."""
    reasons = degenerate_reasons(cell.top_answer, cell.top_share, cell.accuracy, floors)
    flags = ["degenerate"] if reasons else []
    if identical_to:
        flags.append(f"identical_to:{identical_to}")
        reasons.append(f"the same arm as {LABELS_SHORT[identical_to]} (same program text, adapter weights and "
                       "playbook)")
    unchanged = [why for c in configurations if (why := _unchanged_gepa(c))]
    if unchanged:
        flags.append("gepa_unchanged")
        reasons.append(f"GEPA changed nothing in {len(unchanged)} of {len(configurations)} run(s): {unchanged[0]}")
    return cell.model_copy(update={"flags": flags, "flag_reasons": reasons})


LABELS_SHORT = {"baseline": "baseline", "lora": "LoRA-only", "gepa": "GEPA-only", "lora+gepa": "LoRA+GEPA"}


def _identical_cells(matrix: ResponseMatrix, by_cell: dict[str, list[int]]) -> dict[str, str]:
    """Cells whose every seed-matched run is the same arm as an earlier cell's: {later: earlier}."""
    seeds = [c.seed for c in matrix.respondents]
    present = [cell for cell in CELLS if cell in by_cell]
    same = {}
    for b, a in combinations(present, 2):
        pairs = _matched_runs(by_cell[a], by_cell[b], seeds)
        if a not in same and pairs and matrix.identities and all(
                matrix.identities[x] == matrix.identities[y] for x, y in pairs):
            same[a] = b
    return same


def class_contrasts(truth: Truth, by_cell: dict[str, list[int]], pairwise: list[PairwiseResult],
                    synergy_reason: str | None, *, n_bootstrap: int, seed: int) -> list[ClassContrast]:
    """Macro-F1 differences of every cell pair and the macro-F1 interaction contrast, runs pooled per cell."""
    labels = truth.floors.labels
    present = [cell for cell in CELLS if cell in by_cell]
    names = {cell: [truth.matrix.respondents[r].name for r in by_cell[cell]] for cell in present}
    mapped = {cell: [[a if a in labels else "" for a in truth.answers[name]] for name in names[cell]]
              for cell in present}
    replicates = macro_f1_replicates(truth.gold, mapped, labels, n_bootstrap=n_bootstrap, seed=seed)
    point = {cell: truth.classes(names[cell]).macro_f1 for cell in present}
    out = []
    for b, a in combinations(present, 2):
        rows = [p for p in pairwise if p.a == a and p.b == b]
        reason = rows[0].not_measured if rows and all(p.not_measured for p in rows) else None
        out.append(ClassContrast(contrast=f"{a} - {b}", not_measured=reason, macro_f1=None if reason else
                                 _percentile(point[a] - point[b], replicates[a] - replicates[b])))
    if len(present) == 4:
        sign = {"lora+gepa": 1, "lora": -1, "gepa": -1, "baseline": 1}
        out.append(ClassContrast(contrast="synergy", not_measured=synergy_reason, macro_f1=None if synergy_reason else
                                 _percentile(sum(sign[c] * point[c] for c in CELLS),
                                             sum(sign[c] * replicates[c] for c in CELLS))))
    return out


def playbook_contrasts(matrix: ResponseMatrix, by_cell: dict[str, list[int]], *, n_bootstrap: int,
                       seed: int) -> list[PlaybookContrast]:
    """Each cell's runs with their playbook minus their twins without it (respondents naming them in
    `without_playbook_of`); a cell whose every pair is the same arm (empty playbooks) is not measured."""
    complete = matrix.complete()
    twins = {c.without_playbook_of: r for r, c in enumerate(matrix.respondents) if c.without_playbook_of and complete[r]}
    out = []
    for cell in CELLS:
        pairs = [(r, twins[matrix.respondents[r].name]) for r in by_cell.get(cell, [])
                 if matrix.respondents[r].name in twins]
        if not pairs:
            continue
        on = matrix.correct[[r for r, _ in pairs]]
        off = matrix.correct[[w for _, w in pairs]]
        reasons = [not_measured(matrix, r, w) for r, w in pairs]
        reason = None if not all(reasons) else f"{reasons[0]}: every playbook of this cell left the answers as they were"
        difference = None if reason else _percentile(
            _pooled_accuracy(on) - _pooled_accuracy(off),
            cell_bootstrap({"difference": on - off}, n_bootstrap=n_bootstrap, seed=seed)["difference"])
        out.append(PlaybookContrast(cell=cell, runs=len(pairs), with_playbook=_pooled_accuracy(on),
                                    without_playbook=_pooled_accuracy(off), difference=difference,
                                    not_measured=reason))
    return out


# --------------------------------------------------------------------------- pairwise


def _matched_runs(runs_a: list[int], runs_b: list[int], seeds: list[int]) -> list[tuple[int, int]]:
    """Row pairs with equal seeds; a cell with a single run stands in for every seed."""
    if len(runs_a) == 1 and len(runs_b) == 1:
        return [(runs_a[0], runs_b[0])]
    pairs = []
    for seed in sorted({seeds[r] for r in runs_a + runs_b}):
        a = [r for r in runs_a if seeds[r] == seed] or (runs_a if len(runs_a) == 1 else [])
        b = [r for r in runs_b if seeds[r] == seed] or (runs_b if len(runs_b) == 1 else [])
        if a and b and (a[0], b[0]) not in pairs:
            pairs.append((a[0], b[0]))
    return pairs


def pairwise_tests(matrix: ResponseMatrix, by_cell: dict[str, list[int]], *, n_bootstrap: int,
                   seed: int) -> list[PairwiseResult]:
    """Paired item bootstrap and exact McNemar for each seed-matched run pair of each cell pair, Holm-corrected."""
    seeds = [c.seed for c in matrix.respondents]
    present = [cell for cell in CELLS if cell in by_cell]
    rows = []
    for b, a in combinations(present, 2):  # later cells carry more optimization: a - b
        for run_a, run_b in _matched_runs(by_cell[a], by_cell[b], seeds):
            names = dict(a=a, b=b, run_a=matrix.respondents[run_a].name, run_b=matrix.respondents[run_b].name)
            if reason := not_measured(matrix, run_a, run_b):
                rows.append(dict(**names, difference=None, only_a_correct=None, only_b_correct=None, p_value=None,
                                 not_measured=reason))
                continue
            x, y = matrix.correct[run_a], matrix.correct[run_b]
            mcnemar = mcnemar_exact(x, y)
            rows.append(dict(**names, difference=Estimate.of(paired_bootstrap_difference(x, y, n_bootstrap=n_bootstrap,
                                                                                         seed=seed)),
                             only_a_correct=mcnemar.only_a_correct, only_b_correct=mcnemar.only_b_correct,
                             p_value=mcnemar.p_value))
    tested = [row for row in rows if row["p_value"] is not None]
    adjusted = dict(zip(map(id, tested), holm_adjust([row["p_value"] for row in tested]))) if tested else {}
    return [PairwiseResult(**row, p_holm=None if id(row) not in adjusted else float(adjusted[id(row)]))
            for row in rows]


# --------------------------------------------------------------------------- synergy


@lru_cache(maxsize=64)
def design_power(n_items: int, runs_per_cell: int, n_simulations: int, seed: int) -> PowerResult:
    """Power of the reported procedure to detect a 0.5-logit interaction at this design's size (memoized)."""
    power = interaction_power(POWER_EFFECT_LOGIT, n_items=n_items, runs_per_cell=runs_per_cell, alpha=ALPHA,
                              n_simulations=n_simulations, seed=seed)
    return PowerResult(effect_logit=POWER_EFFECT_LOGIT, n_items=n_items, runs_per_cell=runs_per_cell,
                       power=power.power, standard_error=power.standard_error, n_simulations=n_simulations)


EDGES = (("lora", "baseline"), ("gepa", "baseline"), ("lora+gepa", "lora"), ("lora+gepa", "gepa"))


def synergy_not_measured(pairwise: list[PairwiseResult]) -> str | None:
    """Why the interaction contrast is no measurement: one of the four differences it adds up is not measured."""
    return next((f"{LABELS_SHORT[p.a]} vs {LABELS_SHORT[p.b]}: {p.not_measured}" for p in pairwise
                 if (p.a, p.b) in EDGES and p.not_measured), None)


def _edge_reason(matrix: ResponseMatrix, by_cell: dict[str, list[int]]) -> str | None:
    """`synergy_not_measured` for a matrix whose pairwise tests were not run (the pooled comparison)."""
    seeds = [c.seed for c in matrix.respondents]
    return next((f"{LABELS_SHORT[a]} vs {LABELS_SHORT[b]}: {why}" for a, b in EDGES
                 for x, y in _matched_runs(by_cell[a], by_cell[b], seeds) if (why := not_measured(matrix, x, y))),
                None)


def synergy(table: FactorialResponses, *, n_items: int, n_bootstrap: int, seed: int,
            power_simulations: int, not_measured_because: str | None = None) -> SynergyResult:
    """Interaction contrast with its hierarchical-bootstrap intervals, mixed-model test and design power.

    With ``not_measured_because`` only the design's power is computed: the contrast of arms
    that are copies of each other is zero by construction, not a finding.
    """
    runs_per_cell = {cell: len(set(table.run_id[(table.lora == lora) & (table.gepa == gepa)]))
                     for (lora, gepa), cell in CELL_NAMES.items()}
    if not_measured_because:
        runs = min(runs_per_cell.values())
        return SynergyResult(logit=None, accuracy=None, runs_per_cell=runs_per_cell,
                             captures_run_variance=runs >= 2, mixed=None, mixed_error=None,
                             power=design_power(n_items, runs, power_simulations, seed),
                             not_measured=f"not measured: {not_measured_because}")
    interval = hierarchical_bootstrap_interaction(table, n_bootstrap=n_bootstrap, seed=seed)
    mixed, mixed_error = None, None
    try:
        fit = mixed_model_interaction(table, seed=seed)
        mixed = MixedModelResult(estimate=fit.estimate, posterior_sd=fit.posterior_sd, p_value=fit.p_value,
                                 item_sd=fit.item_sd, run_sd=fit.run_sd)
    except (AxError, np.linalg.LinAlgError, ValueError) as error:
        mixed_error = f"{type(error).__name__}: {error}"
    runs = min(interval.runs_per_cell.values())
    return SynergyResult(logit=Estimate.of(interval.logit), accuracy=Estimate.of(interval.accuracy),
                         runs_per_cell=interval.runs_per_cell, captures_run_variance=interval.captures_run_variance,
                         mixed=mixed, mixed_error=mixed_error,
                         power=design_power(n_items, runs, power_simulations, seed))


def _factorial_table(matrix: ResponseMatrix, rows: list[int], prefix: str = "") -> FactorialResponses:
    run_id, lora, gepa, item_id, correct = [], [], [], [], []
    for r in rows:
        configuration = matrix.respondents[r]
        answered = np.flatnonzero(~np.isnan(matrix.correct[r]))
        run_id += [prefix + configuration.name] * answered.size
        lora += [configuration.lora] * answered.size
        gepa += [configuration.gepa] * answered.size
        item_id += [prefix + matrix.item_ids[j] for j in answered]
        correct += matrix.correct[r, answered].astype(int).tolist()
    return FactorialResponses(np.array(run_id), np.array(lora), np.array(gepa), np.array(item_id), np.array(correct))


# --------------------------------------------------------------------------- verdict


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _share(estimate: Estimate) -> str:
    return f"{100 * estimate.estimate:.1f}% [{100 * estimate.low:.1f}, {100 * estimate.high:.1f}]"


def outcome_against_best(difference: Estimate) -> str:
    """How the combination did against the best single method, from the interval of their difference.

    "Worse" only when the whole interval is below zero: a tie (for example identical answers,
    whose interval is [0, 0]) is not a loss.
    """
    if difference.low > 0:
        return "beat"
    return "was worse than" if difference.high < 0 else "did not clearly beat"


def floor_sentences(cells: list[CellResult], floors: Floors | None) -> list[str]:
    """The floors, and every flagged configuration with its reasons: read before any difference."""
    out = []
    if floors is not None:
        chance = f"; uniform chance {100 * floors.chance:.1f}% ({len(floors.labels)} labels)" if floors.chance else ""
        constant = "; any constant answer has balanced accuracy at chance" if floors.chance else ""
        out.append(f"Floors: always answering {floors.majority_answer!r} scores {100 * floors.majority:.1f}% "
                   f"(the majority floor){chance}{constant}.")
    for cell in cells:
        if cell.flags:
            out.append(f"{LABELS_SHORT[cell.cell]} is flagged {', '.join(cell.flags)}: {'; '.join(cell.flag_reasons)}.")
    return out


def verdict(cells: list[CellResult], replicates: dict[str, np.ndarray], result: SynergyResult | None,
            pairwise: list[PairwiseResult], floors: Floors | None = None) -> Verdict:
    """Plain sentences: the floors and flags, did the combination beat the best single method, is there an
    interaction, what power. Differences of arms that are copies are named as such, not given as numbers."""
    by_cell = {c.cell: c for c in cells}
    first = floor_sentences(cells, floors)
    if not {"lora", "gepa", "lora+gepa"} <= set(by_cell):
        missing = sorted({"baseline", "lora", "gepa", "lora+gepa"} - set(by_cell))
        return Verdict(best_single=None, combination_minus_best=None, combination_beats_best=None, interaction=None,
                       sentences=[*first, f"Cells {', '.join(missing)} have no complete runs: no comparison of the "
                                  "combination with the single methods and no synergy estimate."])
    best = max(("lora", "gepa"), key=lambda c: by_cell[c].accuracy.estimate)
    combined, single = by_cell["lora+gepa"].accuracy, by_cell[best].accuracy
    rows = [p for p in pairwise if p.a == "lora+gepa" and p.b == best]
    tests = [p for p in rows if p.not_measured is None]
    sentences = list(first)
    difference, beats = None, None
    if rows and not tests:
        sentences.append(f"LoRA+GEPA reached {_share(combined)}; the best single method, {LABELS_SHORT[best]}, "
                         f"{_share(single)}. Their difference is not measured: {rows[0].not_measured}.")
    else:
        single_runs = len(by_cell["lora+gepa"].runs) == 1 and len(by_cell[best].runs) == 1
        if single_runs and len(tests) == 1:  # the pairwise row's paired item bootstrap: one number, not two
            difference = tests[0].difference
        else:
            difference = _percentile(combined.estimate - single.estimate, replicates["lora+gepa"] - replicates[best])
        beats = difference.low > 0
        significant = sum(p.p_holm < ALPHA for p in tests)
        sentences.append(
            f"LoRA+GEPA reached {_share(combined)}; the best single method, {LABELS_SHORT[best]}, {_share(single)}. "
            f"Difference {_points(difference.estimate)} points [{_points(difference.low)}, {_points(difference.high)}] "
            f"({'paired item' if single_runs else 'run-level'} bootstrap): "
            + f"the combination {outcome_against_best(difference)} the best single method."
            + (f" Run-by-run exact McNemar tests: {significant} of {len(tests)} significant after Holm."
               if tests else ""))
    if result is None:
        return Verdict(best_single=best, combination_minus_best=difference, combination_beats_best=beats,
                       interaction=None, sentences=sentences + ["The baseline cell has no complete runs: no synergy."])
    power = result.power
    power_sentence = (
        f"Power: with {power.n_items} items and {power.runs_per_cell} run(s) per cell, this design detects a "
        f"{power.effect_logit}-logit interaction {100 * power.power:.0f}% of the time "
        f"({power.n_simulations} simulations, run SD 0.25 logits)"
        + ("; a non-detection says little." if power.power < 0.8 else "."))
    if result.not_measured:
        return Verdict(best_single=best, combination_minus_best=difference, combination_beats_best=beats,
                       interaction=None, sentences=sentences + [f"Synergy {result.not_measured}.", power_sentence])
    boot = result.logit.excludes_zero()
    mixed = result.mixed.p_value < ALPHA if result.mixed else None
    interaction = ("differs from zero" if boot and mixed in (True, None) else
                   "not detected" if not boot and mixed in (False, None) else "conflicting")
    mixed_text = (f"the mixed model's lora:gepa term is {result.mixed.estimate:+.2f} logits "
                  f"(SD {result.mixed.posterior_sd:.2f}, p = {result.mixed.p_value:.3g})" if result.mixed
                  else f"the mixed model could not be fitted ({result.mixed_error})")
    sentences.append(
        f"Synergy (interaction contrast on the logit scale, which defines it here): {result.logit.estimate:+.2f} "
        f"logits [{result.logit.low:+.2f}, {result.logit.high:+.2f}] (hierarchical bootstrap); on the accuracy "
        f"scale {_points(result.accuracy.estimate)} points [{_points(result.accuracy.low)}, "
        f"{_points(result.accuracy.high)}]; {mixed_text}. "
        + {"differs from zero": "The interaction differs from zero.",
           "not detected": "No interaction was detected: it does not differ detectably from zero.",
           "conflicting": "The bootstrap and the mixed model disagree: the interaction is not established.",
           }[interaction])
    sentences.append(power_sentence)
    if not result.captures_run_variance:
        sentences.append(
            "Some cell has a single run (one seed), so run-to-run variance is not measured: synergy cannot be "
            "told apart from run-to-run variance. The intervals reflect item sampling only, and the power figure is "
            "inflated by false positives (with runs that vary, an item-only analysis rejects a true null "
            "interaction far more often than 5%; `ax.evals.stats.interaction_power(0.0, ...)` gives the rate for a "
            "design). Use at least 3 seeds per cell.")
    return Verdict(best_single=best, combination_minus_best=difference, combination_beats_best=beats,
                   interaction=interaction, sentences=sentences)


def adaptive_runs(matrix: ResponseMatrix, truth: Truth | None) -> list[AdaptiveRun]:
    """The comparison runs that answered only the items an adaptive test picked, with their estimates and flags."""
    complete = matrix.complete()
    column = {item: j for j, item in enumerate(matrix.item_ids)}
    floors = truth.floors if truth else None
    out = []
    for r, configuration in enumerate(matrix.respondents):
        estimate = matrix.adaptive.get(configuration.name)
        if configuration.role != "comparison" or complete[r] or estimate is None:
            continue
        margin = 1.96 * estimate.accuracy_standard_error
        accuracy = Estimate(estimate=estimate.accuracy, low=max(0.0, estimate.accuracy - margin),
                            high=min(1.0, estimate.accuracy + margin))
        top, share = None, None
        if truth is not None:
            top, share = truth.top_answer([configuration.name], [column[i] for i in estimate.items if i in column])
        reasons = degenerate_reasons(top, share, accuracy, floors, adaptive=True)
        flags = ["degenerate"] if reasons else []
        if estimate.held_out_error is None or estimate.held_out_error > GOAL_ERROR:
            flags.append("adaptive_unchecked" if estimate.held_out_error is None else "adaptive_off_goal")
            reasons.append("no replay on the calibration respondents was recorded to check its error"
                           if estimate.held_out_error is None else
                           f"the same tests replayed on the calibration respondents missed by "
                           f"{100 * estimate.held_out_error:.1f} points on average, beyond the "
                           f"{100 * GOAL_ERROR:.0f}-point goal")
        if why := _unchanged_gepa(configuration):
            flags.append("gepa_unchanged")
            reasons.append(f"GEPA changed nothing: {why}")
        out.append(AdaptiveRun(name=configuration.name, cell=configuration.cell, seed=configuration.seed,
                               accuracy=accuracy, estimate=estimate, top_answer=top, top_share=share, flags=flags,
                               flag_reasons=reasons))
    return out


def adaptive_sentences(runs: list[AdaptiveRun]) -> list[str]:
    """What an adaptively scored run is and is not: a forecast with its error; no test against another run."""
    if not runs:
        return []
    out = [f"{len(runs)} comparison run(s) were scored adaptively, answering only the items adaptive testing picked "
           f"({', '.join(f'{r.name}: {len(r.estimate.items)} of {r.estimate.pool_items}' for r in runs)}): their accuracy is a "
           "forecast for every test item with its error (table below). Pairwise tests, the combination against "
           "the single methods and synergy need every item answered and are not measured for them."]
    small = [r.estimate for r in runs if r.estimate.pool_items < MIN_ADAPTIVE_ITEMS]
    if small:
        out.append(f"The pool has {small[0].pool_items} calibrated items, under {MIN_ADAPTIVE_ITEMS}: the unasked items "
                   f"alone leave a mean error of {100 * min(r.sampling_floor for r in small):.1f} to "
                   f"{100 * max(r.sampling_floor for r in small):.1f} points (the sampling floor), so these forecasts "
                   "are no 2-point estimates.")
    out += [f"{r.name} ({LABELS_SHORT[r.cell]}, adaptive) is flagged {', '.join(r.flags)}: {'; '.join(r.flag_reasons)}."
            for r in runs if r.flags]
    return out


# --------------------------------------------------------------------------- entry points


def comparison_rows(matrix: ResponseMatrix) -> tuple[dict[str, list[int]], list[str]]:
    """Rows of complete comparison respondents per cell, and descriptions of incomplete ones (excluded) other than
    those scored adaptively."""
    complete = matrix.complete()
    by_cell: dict[str, list[int]] = {}
    excluded = []
    for r, configuration in enumerate(matrix.respondents):
        if configuration.role != "comparison":
            continue
        if complete[r]:
            by_cell.setdefault(configuration.cell, []).append(r)
        elif configuration.name not in matrix.adaptive:  # scored adaptively: reported as such, not excluded
            answered = int(np.sum(~np.isnan(matrix.correct[r])))
            excluded.append(f"{configuration.name} ({configuration.cell}): answered {answered} of "
                            f"{len(matrix.item_ids)} items")
    return by_cell, excluded


def compare_domain(matrix: ResponseMatrix, calibration: PoolCalibration | None, *, n_bootstrap: int = 2000,
                   seed: int = 0, power_simulations: int = 200) -> Comparison:
    """The full comparison of one domain's four configurations (see the module docstring).

    Without ``calibration`` (the items could not be calibrated) abilities are left out; cells
    without complete runs are listed as missing and leave out what needs them.
    """
    by_cell, excluded = comparison_rows(matrix)
    present = [cell for cell in CELLS if cell in by_cell]
    cells = {cell: matrix.correct[by_cell[cell]] for cell in present}
    runs = {cell: [(matrix.respondents[r].name, matrix.respondents[r].seed) for r in by_cell[cell]] for cell in present}
    replicates = cell_bootstrap(cells, n_bootstrap=n_bootstrap, seed=seed) if cells else {}
    truth = Truth.of(matrix)
    floors = truth.floors if truth else None
    identical = _identical_cells(matrix, by_cell)
    cell_results = [cell_flags(c, floors, identical.get(c.cell), [matrix.respondents[r] for r in by_cell[c.cell]])
                    for c in _cell_results(cells, runs, calibration, replicates, truth)]
    pairwise = pairwise_tests(matrix, by_cell, n_bootstrap=n_bootstrap, seed=seed)
    result, reason = None, synergy_not_measured(pairwise)
    if len(present) == 4:
        table = _factorial_table(matrix, [r for cell in present for r in by_cell[cell]])
        result = synergy(table, n_items=len(matrix.item_ids), n_bootstrap=n_bootstrap, seed=seed,
                         power_simulations=power_simulations, not_measured_because=reason)
    contrasts = (class_contrasts(truth, by_cell, pairwise, reason, n_bootstrap=n_bootstrap, seed=seed)
                 if truth and floors.labels and present else [])
    adaptive = adaptive_runs(matrix, truth)
    judged = verdict(cell_results, replicates, result, pairwise, floors)
    judged = judged.model_copy(update={"sentences": [*judged.sentences, *adaptive_sentences(adaptive)]})
    return Comparison(domain=matrix.domain, items=len(matrix.item_ids), cells=cell_results, pairwise=pairwise,
                      synergy=result, verdict=judged, adaptive=adaptive,
                      missing_cells=[c for c in CELLS if c not in by_cell], excluded=excluded, floors=floors,
                      class_contrasts=contrasts,
                      playbook=playbook_contrasts(matrix, by_cell, n_bootstrap=n_bootstrap, seed=seed),
                      steps=step_accuracies(matrix, {cell: by_cell[cell] for cell in present}, n_bootstrap=n_bootstrap,
                                            seed=seed))


def compare_pooled(matrices: list[ResponseMatrix], *, n_bootstrap: int = 2000, seed: int = 0,
                   power_simulations: int = 200) -> Comparison | None:
    """Accuracy and synergy pooled over the domains that have all 4 cells; None if fewer than 2 do.

    Items and runs are prefixed by their domain. Runs are resampled within cells across
    domains, so between-domain differences count as run-to-run variation: conservative. Cell
    accuracies pool items, so larger domains weigh more. Abilities are left out: each domain's
    items define their own scale.
    """
    usable, excluded = [], []
    for matrix in matrices:
        rows, _ = comparison_rows(matrix)
        if set(rows) == set(CELLS):
            usable.append((matrix, rows))
        else:
            excluded.append(f"{matrix.domain}: lacks complete runs of {', '.join(c for c in CELLS if c not in rows)}")
    if len(usable) < 2:
        return None
    offsets = np.cumsum([0] + [len(m.item_ids) for m, _ in usable])
    blocks: dict[str, list[np.ndarray]] = {cell: [] for cell in CELLS}
    runs: dict[str, list[tuple[str, int]]] = {cell: [] for cell in CELLS}
    for (matrix, rows), offset in zip(usable, offsets):
        for cell in CELLS:
            block = np.full((len(rows[cell]), offsets[-1]), np.nan)
            block[:, offset:offset + len(matrix.item_ids)] = matrix.correct[rows[cell]]
            blocks[cell].append(block)
            runs[cell] += [(f"{matrix.domain}/{matrix.respondents[r].name}", matrix.respondents[r].seed)
                           for r in rows[cell]]
    cells = {cell: np.vstack(parts) for cell, parts in blocks.items()}
    tables = [_factorial_table(m, [r for cell in CELLS for r in rows[cell]], prefix=f"{m.domain}/")
              for m, rows in usable]
    table = FactorialResponses(*(np.concatenate([getattr(t, name) for t in tables])
                                 for name in ("run_id", "lora", "gepa", "item_id", "correct")))
    replicates = cell_bootstrap(cells, n_bootstrap=n_bootstrap, seed=seed)
    cell_results = _cell_results(cells, runs, None, replicates)
    reason = next((f"{m.domain}: {why}" for m, rows in usable if (why := _edge_reason(m, rows))), None)
    result = synergy(table, n_items=int(offsets[-1]), n_bootstrap=n_bootstrap, seed=seed,
                     power_simulations=power_simulations, not_measured_because=reason)
    # Runs of different domains are not repeated runs of one configuration: seeds are what measure run variance.
    repeated = all(len(rows[cell]) >= 2 for _, rows in usable for cell in CELLS)
    result = result.model_copy(update={"captures_run_variance": repeated})
    return Comparison(domain="pooled", items=int(offsets[-1]), cells=cell_results, pairwise=[], synergy=result,
                      verdict=verdict(cell_results, replicates, result, []), missing_cells=[], excluded=excluded)
