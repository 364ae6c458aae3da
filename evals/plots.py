"""The report's plots, drawn from a Report alone (so report.json is enough to redraw them).

matplotlib's object API (``Figure`` without pyplot): no global state, no display backend,
safe in threads and on headless machines. Each plot becomes PNG bytes for inline embedding.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from ax.evals.comparison import Comparison
from ax.evals.report import Report
from ax.evals.stats import CELLS

COLORS = {"baseline": "#7f7f7f", "lora": "#1f77b4", "gepa": "#ff7f0e", "lora+gepa": "#2ca02c"}
LABELS = {"baseline": "baseline", "lora": "LoRA-only", "gepa": "GEPA-only", "lora+gepa": "LoRA+GEPA"}
MAX_CURVES = 8
TITLES = {
    "accuracy-ability": "Accuracy and ability per configuration", "interaction": "Interaction plot (LoRA x GEPA)",
    "heatmap": "Accuracy by domain and configuration", "item-curves": "Item characteristic curves",
    "difficulty": "Item difficulty", "adaptive": "Adaptive testing: items used vs error",
}


@dataclass(frozen=True)
class Plot:
    key: str
    caption: str
    png: bytes

    @property
    def title(self) -> str:
        return TITLES[self.key]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return buffer.getvalue()


def _grid(n: int, width: float = 3.4, height: float = 2.8) -> tuple[Figure, list]:
    columns = min(4, n)
    rows = math.ceil(n / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure, axes[:n]


def _cells(comparison: Comparison) -> dict:
    return {c.cell: c for c in comparison.cells}


def accuracy_and_ability(report: Report) -> Plot:
    comparisons = report.comparisons + ([report.pooled] if report.pooled else [])
    figure = Figure(figsize=(max(6.0, 1.3 * len(comparisons) + 2), 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    x = np.arange(len(comparisons))
    for k, cell in enumerate(CELLS):
        offset = (k - 1.5) * 0.18
        for ax, value in ((top, "accuracy"), (bottom, "ability")):
            points = [(i, getattr(_cells(c)[cell], value)) for i, c in enumerate(comparisons)
                      if cell in _cells(c) and getattr(_cells(c)[cell], value) is not None]
            if not points:
                continue
            xs = np.array([i for i, _ in points]) + offset
            est = np.array([e.estimate for _, e in points])
            err = np.array([[e.estimate - e.low for _, e in points], [e.high - e.estimate for _, e in points]])
            scale = 100 if value == "accuracy" else 1
            ax.errorbar(xs, est * scale, yerr=err * scale, fmt="o", color=COLORS[cell], label=LABELS[cell], capsize=3)
    labels = [c.domain for c in comparisons]
    top.set_ylabel("accuracy (%)")
    bottom.set_ylabel("ability (logits, per-domain scale)")
    for ax in (top, bottom):
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    top.legend(ncols=4, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 1.22))
    return Plot("accuracy-ability",
                "95% intervals. Accuracy: Wilson (one run) or run-level bootstrap (several runs). Ability: EAP on "
                "items calibrated on the domain's whole respondent pool; scales are per domain, so compare "
                "configurations within a domain, not across.", _png(figure))


def interaction(report: Report) -> Plot:
    comparisons = [c for c in report.comparisons + ([report.pooled] if report.pooled else []) if c.synergy]
    figure, axes = _grid(max(1, len(comparisons)))
    for ax, comparison in zip(axes, comparisons):
        cells = _cells(comparison)
        for lora, name in ((False, "LoRA off"), (True, "LoRA on")):
            pair = [cells["lora+gepa" if lora else "gepa"] if gepa else cells["lora" if lora else "baseline"]
                    for gepa in (False, True)]
            est = np.array([100 * c.accuracy.estimate for c in pair])
            err = np.array([[100 * (c.accuracy.estimate - c.accuracy.low) for c in pair],
                            [100 * (c.accuracy.high - c.accuracy.estimate) for c in pair]])
            ax.errorbar([0, 1], est, yerr=err, marker="o", capsize=3, label=name,
                        color=COLORS["lora"] if lora else COLORS["baseline"])
        logit = comparison.synergy.logit
        ax.set_title(f"{comparison.domain}\n" + ("synergy not measured" if logit is None else
                     f"synergy {logit.estimate:+.2f} [{logit.low:+.2f}, {logit.high:+.2f}] logits"), fontsize="small")
        ax.set_xticks([0, 1], ["GEPA off", "GEPA on"])
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize="x-small")
    if not comparisons:
        axes[0].text(0.5, 0.5, "no domain has all four cells", ha="center", va="center")
    return Plot("interaction",
                "Parallel lines mean no interaction on the accuracy scale; synergy itself is judged on the logit "
                "scale (title: interaction contrast with its hierarchical-bootstrap 95% interval).", _png(figure))


def item_curves(report: Report) -> Plot:
    figure, axes = _grid(len(report.calibrations))
    theta = np.linspace(-4, 4, 161)
    for ax, calibration in zip(axes, report.calibrations):
        usable = sorted((i for i in calibration.items if i.difficulty is not None), key=lambda i: i.difficulty)
        picks = [usable[round(k)] for k in np.linspace(0, len(usable) - 1, min(MAX_CURVES, len(usable)))]
        for item in picks:
            p = 1 / (1 + np.exp(-item.discrimination * (theta - item.difficulty)))
            ax.plot(theta, p, linewidth=1.2, label=item.id)
        ax.set_title(f"{calibration.domain} ({calibration.irt_model})", fontsize="small")
        ax.set_xlabel("ability (logits)")
        ax.set_ylabel("P(correct)")
        if picks:
            ax.legend(fontsize="xx-small")
        else:
            ax.text(0.5, 0.5, "no calibrated items", ha="center", va="center", transform=ax.transAxes)
    return Plot("item-curves",
                f"Up to {MAX_CURVES} items per domain, spread over the difficulty range.", _png(figure))


def difficulty_histogram(report: Report) -> Plot:
    figure, axes = _grid(len(report.calibrations))
    for ax, calibration in zip(axes, report.calibrations):
        values = [i.difficulty for i in calibration.items if i.difficulty is not None]
        ax.hist(values, bins=min(20, max(5, len(values) // 4)), color="#4c72b0")
        ax.set_title(f"{calibration.domain}: {len(values)} calibrated, {len(calibration.uninformative)} uninformative",
                     fontsize="small")
        ax.set_xlabel("difficulty (logits)")
        ax.set_ylabel("items")
    return Plot("difficulty", "Items every respondent passed or failed have no difficulty "
                "estimate and are counted as uninformative.", _png(figure))


def heatmap(report: Report) -> Plot:
    comparisons = report.comparisons
    values = np.array([[_cells(c)[cell].accuracy.estimate * 100 if cell in _cells(c) else np.nan for cell in CELLS]
                       for c in comparisons])
    figure = Figure(figsize=(6.5, 0.45 * len(comparisons) + 1.6), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(values, cmap="viridis", aspect="auto", vmin=0, vmax=100)
    ax.set_xticks(range(len(CELLS)), [LABELS[c] for c in CELLS])
    ax.set_yticks(range(len(comparisons)), [c.domain for c in comparisons])
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black")
    figure.colorbar(image, ax=ax, label="accuracy (%)")
    return Plot("heatmap", "Pooled accuracy of each cell's runs.", _png(figure))


def adaptive(report: Report) -> Plot:
    figure = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = figure.subplots()
    for check in report.adaptive:
        for method in dict.fromkeys(b.method for b in check.budgets):
            mine = [b for b in check.budgets if b.method == method]
            ax.plot([100 * b.fraction for b in mine], [100 * b.mean_abs_error for b in mine], marker="o",
                    label=f"{check.domain}, {method}")
    ax.axhline(2.0, color="red", linestyle="--", linewidth=1, label="goal: 2 points")
    ax.axvline(25, color="red", linestyle=":", linewidth=1)
    ax.set_xlabel("item budget (% of test items)")
    ax.set_ylabel("mean |error| vs full evaluation (points)")
    ax.legend(fontsize="x-small")
    return Plot("adaptive",
                "Adaptive tests of the comparison runs replayed from their stored answers, each seed's runs scored "
                "without them: irt (maximum-information items, EAP ability, forecast over every item) and sampled "
                "(random items, the pool's answers as predictor).",
                _png(figure))


def draw_figures(report: Report) -> list[Plot]:
    plots = [accuracy_and_ability(report), interaction(report), heatmap(report), item_curves(report),
             difficulty_histogram(report)]
    if report.adaptive:
        plots.append(adaptive(report))
    return plots
