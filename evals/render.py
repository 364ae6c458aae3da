"""Report.md and report.html from one list of content blocks, so both always say the same thing.

``blocks(report)`` decides what the report contains; ``to_markdown`` and ``to_html`` only
decide how each kind of block looks. The HTML is one self-contained file: inline CSS, and
plots as base64 PNGs in ``<img>`` tags (no scripts, no external requests). ``write_report``
writes both with report.json and manifest.json.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from ax.evals.comparison import AdaptiveRun, CellResult, Comparison, Estimate
from ax.evals.plots import LABELS, TITLES, Plot, draw_figures
from ax.evals.report import CalibrationSummary, Report
from ax.model import atomic_write_text


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class FigureRef:
    key: str


Block = Heading | Paragraph | Bullets | Table | Code | FigureRef


def _pct(e: Estimate) -> str:
    return f"{100 * e.estimate:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _num(e: Estimate, unit: str = "") -> str:
    return f"{e.estimate:+.2f} [{e.low:+.2f}, {e.high:+.2f}]{unit}"


def _ability(theta: float | None, se: float | None) -> str:
    return "—" if theta is None else f"{theta:+.2f} ± {se:.2f}"


def _p(p: float) -> str:
    return f"{p:.3g}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _points(e: Estimate | None, reason: str | None = None) -> str:
    if e is None:
        return f"not measured: {reason}" if reason else "—"
    return f"{100 * e.estimate:+.1f} [{100 * e.low:+.1f}, {100 * e.high:+.1f}]"


def _floor_blocks(comparison: Comparison) -> list[Block]:
    """Per-class truth beside accuracy: macro-F1, balanced accuracy, answers, recall and confusion per configuration."""
    floors = comparison.floors
    if floors is None:
        return [Paragraph("No floors or per-class metrics: this run directory's items were stored without their gold "
                          "answers (by an older ax); evaluate into a new run directory to get them.")]
    out: list[Block] = []
    classes = [(c, c.classes) for c in comparison.cells if c.classes]
    if classes:
        labels = floors.labels or []
        out += [Paragraph(f"Per-class truth on {floors.label_field!r} (runs pooled per configuration). Floors: "
                          f"majority {100 * floors.majority:.1f}% (always {floors.majority_answer!r}), chance "
                          f"{_share(floors.chance)}; the majority answer has macro-F1 {_share(floors.majority_macro_f1)} "
                          f"and any constant answer balanced accuracy {_share(floors.chance)}."),
                Table(["configuration", "macro-F1", "balanced accuracy",
                       *(f"recall {label}" for label in labels), "answers given"],
                      [[LABELS[c.cell], _share(m.macro_f1), _share(m.balanced_accuracy),
                        *(_share(m.recall.get(label)) for label in labels),
                        ", ".join(f"{k} {v}" for k, v in m.predictions.items() if v)] for c, m in classes])]
        contrasts = comparison.class_contrasts
        if contrasts:
            out.append(Table(["macro-F1 contrast", "points [95% CI], paired item bootstrap"],
                             [[x.contrast, _points(x.macro_f1, x.not_measured)] for x in contrasts]))
        for c, m in classes:
            out.append(Paragraph(f"Confusion matrix, {LABELS[c.cell]} (rows: gold; columns: answered):"))
            out.append(Table(["gold / answered", *labels, "(other)"],
                             [[label, *map(str, row)] for label, row in zip(labels, m.confusion)]))
    return out


def _arm_blocks(comparison: Comparison) -> list[Block]:
    """What each arm did, per run: the optimization steps' own account (proposals, loss, playbook)."""
    rows = [[r.name, LABELS[c.cell], str(r.seed), "; ".join(r.steps) or "no optimization step"]
            for c in comparison.cells for r in c.runs]
    return [Paragraph("What each arm did:"), Table(["run", "configuration", "seed", "steps"], rows)]


def _adaptive_row(run: AdaptiveRun) -> list[str]:
    e = run.estimate
    return [run.name, LABELS[run.cell], str(run.seed), _pct(run.accuracy),
            "—" if e.held_out_error is None else f"{100 * e.held_out_error:.1f} points",
            f"{len(e.items)} of {e.pool_items} ({100 * len(e.items) / e.pool_items:.0f}%)",
            f"{100 * e.sampling_floor:.1f} points", e.stop_reason.replace("_", " "),
            (f"random items, predicted from {e.calibrated_on} respondents' answers" if e.method == "sampled" else
             f"most informative items, {e.calibrated_items} calibrated by {e.irt_model.upper()} on "
             f"{e.calibrated_on} respondents"),
            f"{run.top_answer} ({_share(run.top_share)})" if run.top_answer is not None else "—",
            "; ".join(run.flag_reasons) if run.flags else "none"]


def _comparison_blocks(comparison: Comparison) -> list[Block]:
    out: list[Block] = [Bullets(comparison.verdict.sentences)]
    out.append(Table(["configuration", "runs", "accuracy [95% CI]", "interval", "ability [95% CI]", "macro-F1",
                      "top answer", "flags"], [
        [LABELS[c.cell], str(len(c.runs)), _pct(c.accuracy), c.accuracy_method,
         _num(c.ability, " logits") if c.ability else "—", _share(c.classes.macro_f1) if c.classes else "—",
         f"{c.top_answer} ({_share(c.top_share)})" if c.top_answer is not None else "—",
         "; ".join(c.flag_reasons) if c.flags else "none"] for c in comparison.cells]))
    if comparison.adaptive:
        out.append(Paragraph(
            "Scored adaptively: each run answered only part of the items, and its accuracy over every test item is "
            "estimated ± 1.96 SE, by whichever method missed less when replayed on the pool: random items with the "
            "difference estimator, the pool's most similar respondents predicting the rest (sampled), or the most "
            "informative items and an IRT forecast (irt; item parameters taken as exact, items every pool "
            "respondent answered alike counted as answered alike again). "
            "The held-out replay error is the pool's own evidence: the same tests replayed on the calibration "
            "respondents, each group calibrated without it, missed their accuracy on every item by that much on "
            "average; where it exceeds the SE, trust it, not the SE. The sampling floor is the mean error the "
            "unasked items' own chance leaves, which no estimator removes."))
        out.append(Table(["run", "configuration", "seed", "estimated accuracy [±1.96 SE]", "held-out replay error",
                          "items asked", "sampling floor", "stopped at", "method", "top answer (asked)",
                          "flags"], [_adaptive_row(r) for r in comparison.adaptive]))
    if comparison.domain != "pooled":
        out.append(Table(["run", "configuration", "seed", "accuracy [95% Wilson]", "ability ± SE", "macro-F1"], [
            [r.name, LABELS[c.cell], str(r.seed), _pct(r.accuracy), _ability(r.ability, r.ability_se),
             _share(r.classes.macro_f1) if r.classes else "—"]
            for c in comparison.cells for r in c.runs]))
        out += _floor_blocks(comparison) + _arm_blocks(comparison)
    if comparison.synergy and comparison.synergy.not_measured:
        s = comparison.synergy
        out.append(Table(["synergy", "estimate", "how"], [
            ["interaction contrast", s.not_measured, "zero by construction when arms are copies: not a finding"],
            [f"power for a {s.power.effect_logit}-logit interaction",
             f"{100 * s.power.power:.0f}% ± {100 * s.power.standard_error:.0f}",
             f"{s.power.n_items} items, {s.power.runs_per_cell} run(s) per cell, {s.power.n_simulations} simulations"]]))
    elif comparison.synergy:
        s = comparison.synergy
        rows = [["interaction contrast, logit scale (defines synergy)", _num(s.logit, " logits"),
                 "hierarchical bootstrap (runs, then items)"],
                ["interaction contrast, accuracy scale", f"{100 * s.accuracy.estimate:+.1f} "
                 f"[{100 * s.accuracy.low:+.1f}, {100 * s.accuracy.high:+.1f}] points", "hierarchical bootstrap"]]
        if s.mixed:
            rows.append(["mixed model lora:gepa (item- and run-conditional)",
                         f"{s.mixed.estimate:+.2f} logits, SD {s.mixed.posterior_sd:.2f}, p = {_p(s.mixed.p_value)}",
                         f"item SD {s.mixed.item_sd:.2f}, run SD {s.mixed.run_sd:.2f}"])
        else:
            rows.append(["mixed model", "not fitted", s.mixed_error or ""])
        rows.append([f"power for a {s.power.effect_logit}-logit interaction",
                     f"{100 * s.power.power:.0f}% ± {100 * s.power.standard_error:.0f}",
                     f"{s.power.n_items} items, {s.power.runs_per_cell} run(s) per cell, "
                     f"{s.power.n_simulations} simulations"])
        out.append(Table(["synergy", "estimate", "how"], rows))
    if comparison.pairwise:
        out.append(Paragraph("Pairwise paired differences, run against run with the same seed (accuracy of the "
                             "first minus the second; paired item bootstrap, exact McNemar, Holm over the table):"))
        out.append(Table(["comparison", "runs", "difference [95% CI]", "only first correct", "only second correct",
                          "McNemar p", "Holm p"], [
            [f"{LABELS[p.a]} − {LABELS[p.b]}", f"{p.run_a} vs {p.run_b}", _points(p.difference, p.not_measured),
             *((str(p.only_a_correct), str(p.only_b_correct), _p(p.p_value), _p(p.p_holm)) if p.not_measured is None
               else ("—",) * 4)] for p in comparison.pairwise]))
    if comparison.playbook:
        out.append(Paragraph("Playbook on vs off: each run answering with its ACE playbook minus the same program and "
                             "adapter without it (runs pooled; items and runs resampled):"))
        out.append(Table(["configuration", "runs", "with playbook", "without", "difference [95% CI]"], [
            [LABELS[x.cell], str(x.runs), _share(x.with_playbook), _share(x.without_playbook),
             _points(x.difference, x.not_measured)] for x in comparison.playbook]))
    if comparison.steps:
        steps = list(dict.fromkeys(x.step for x in comparison.steps))
        by = {(x.cell, x.step): x.accuracy for x in comparison.steps}
        cells = list(dict.fromkeys(x.cell for x in comparison.steps))
        out.append(Paragraph("Per step of the program: the share of items on which each step was right (runs "
                             "pooled; an answer that did not parse counts as wrong at every step):"))
        out.append(Table(["configuration", *steps], [[LABELS[cell], *(_pct(by[cell, step]) for step in steps)]
                                                      for cell in cells]))
    notes = []
    if comparison.missing_cells:
        notes.append(f"Cells without complete runs: {', '.join(comparison.missing_cells)}.")
    if comparison.excluded:
        notes.append(f"Excluded: {'; '.join(comparison.excluded)}.")
    if notes:
        out.append(Paragraph(" ".join(notes)))
    return out


def _calibration_blocks(calibration: CalibrationSummary) -> list[Block]:
    roles = Counter(r.role for r in calibration.pool)
    out: list[Block] = [Paragraph(
        f"IRT calibration: {calibration.irt_model.upper()} on {calibration.respondents} respondents "
        f"({roles['calibration']} calibration-only variants such as GEPA candidates, LoRA checkpoints and ablations; "
        f"{roles['comparison']} comparison runs), {'converged' if calibration.converged else 'NOT converged'}. "
        f"{calibration.note} Uninformative items (no difficulty estimate): {len(calibration.uninformative)}; "
        f"misfitting items (infit or outfit > 1.3): {', '.join(calibration.misfitting) or 'none'}.")]
    partial = [r for r in calibration.pool if r.answered < len(calibration.items)]
    if partial:
        out += [Paragraph("Respondents that answered only some items (adaptive evaluations, interrupted runs), "
                          "scored on the calibrated items they answered:"),
                Table(["respondent", "role", "configuration", "items answered", "ability ± SE"],
                      [[r.name, r.role, LABELS[r.cell], f"{r.answered} of {len(calibration.items)}",
                        _ability(r.ability, r.ability_se)] for r in partial])]
    return out


def _adaptive_summary(runs: list[AdaptiveRun]) -> str:
    """A cell scored only adaptively: its runs' mean forecast, marked as such, and their flags."""
    flags = sorted({flag for run in runs for flag in run.flags})
    return (f"{100 * sum(r.accuracy.estimate for r in runs) / len(runs):.1f} (adaptive estimate, {len(runs)} run(s))"
            + "".join(f" [{flag}]" for flag in flags))


def _cell_summary(cell: CellResult) -> str:
    """Accuracy, then macro-F1 where the domain is classification, then the flags."""
    text = f"{100 * cell.accuracy.estimate:.1f}"
    if cell.classes:
        text += f" (F1 {100 * cell.classes.macro_f1:.1f})"
    return text + "".join(f" [{flag}]" for flag in cell.flags)


def _summary_table(report: Report) -> Table:
    rows = []
    for comparison in ([report.pooled] if report.pooled else []) + report.comparisons:
        cells = {c.cell: c for c in comparison.cells}
        adaptive: dict[str, list[AdaptiveRun]] = {}
        for run in comparison.adaptive:
            adaptive.setdefault(run.cell, []).append(run)
        s = comparison.synergy
        floors = comparison.floors
        rows.append([comparison.domain,
                     "—" if floors is None else f"{100 * floors.majority:.1f}" + (
                         f" / {100 * floors.chance:.1f}" if floors.chance else ""),
                     *(_cell_summary(cells[c]) if c in cells else _adaptive_summary(adaptive[c]) if c in adaptive
                       else "—" for c in LABELS),
                     ("not measured" if s.not_measured else _num(s.logit)) if s else "—",
                     f"{s.mixed.p_value:.3g}" if s and s.mixed else ("not fitted" if s and s.mixed_error else "—"),
                     f"{100 * s.power.power:.0f}%" if s else "—",
                     ("yes" if s.captures_run_variance else "NO (one run)") if s else "—"])
    return Table(["domain", "floors: majority / chance (%)", *(f"{LABELS[c]} (%)" for c in LABELS),
                  "synergy, logits [95% CI]", "mixed-model p", "power (0.5 logit)", "run variance measured"], rows)


def blocks(report: Report) -> list[Block]:
    out: list[Block] = [Heading(1, "ax evaluation report"),
                        Paragraph(f"Run directory {report.run_dir}; created {report.created:%Y-%m-%d %H:%M UTC}."),
                        Heading(2, "Summary"), Bullets(report.summary), _summary_table(report),
                        FigureRef("accuracy-ability"), FigureRef("heatmap"), FigureRef("interaction")]
    if report.pooled:
        out += [Heading(2, f"Pooled over domains ({report.pooled.items} items)"), *_comparison_blocks(report.pooled)]
    comparisons = {c.domain: c for c in report.comparisons}
    for calibration in report.calibrations:
        comparison = comparisons[calibration.domain]
        items = (f"{comparison.items} {comparison.split} items" if comparison.split else
                 f"{comparison.items} items, splits not recorded")
        out += [Heading(2, f"Domain: {comparison.domain} ({items})"), *_comparison_blocks(comparison),
                *_calibration_blocks(calibration)]
    out += [Heading(2, "Item calibration"), FigureRef("item-curves"), FigureRef("difficulty")]
    if report.adaptive:
        out += [Heading(2, "Adaptive evaluation"), FigureRef("adaptive")]
        for check in report.adaptive:
            out += [Heading(3, check.domain), Paragraph(check.sentence),
                    Table(["method", "budget", "items used (mean)", "mean |error|", "max |error|",
                           "forecast SE (mean)", "as many random items: mean |error|"], [
                        [b.method, f"{100 * b.fraction:.0f}% ({b.max_items} item(s))", f"{b.mean_items_used:.1f}",
                         f"{100 * b.mean_abs_error:.1f} points", f"{100 * b.max_abs_error:.1f} points",
                         f"{100 * b.mean_standard_error:.1f} points", f"{100 * b.random_items_error:.1f} points"]
                        for b in check.budgets])]
    m = report.manifest
    out += [Heading(2, "Manifest"),
            Table(["model", "fingerprint", "decoding"],
                  [[x.name, x.fingerprint, str(x.lm_settings)] for x in m.models]),
            Table(["adapter", "fingerprint", "base model", "training data", "used by"],
                  [[a.path, a.fingerprint[:16], a.base_model or "—", a.training_data_hash or "—",
                    ", ".join(a.used_by)] for a in m.adapters] or [["none", "", "", "", ""]]),
            Table(["domain", "items", "data digest", "respondents", "seeds"],
                  [[d.domain, str(d.items), d.data_digest, str(d.respondents), ", ".join(map(str, d.seeds))]
                   for d in m.domains]),
            Paragraph("Package versions at evaluation: " + "; ".join(
                ", ".join(f"{k} {v}" for k, v in versions.items()) for versions in m.evaluation_versions)
                + ". At report time: " + ", ".join(f"{k} {v}" for k, v in m.report_versions.items()) + "."),
            Heading(2, "Reproduce"),
            Paragraph("The evaluations (each skips answers already stored), then this report:"),
            Code("\n".join([*m.evaluation_commands, report.command]))]
    return out


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    lines: list[str] = []
    for block in blocks(report):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += ["| " + " | ".join(map(_md_cell, block.header)) + " |",
                      "|" + "---|" * len(block.header),
                      *("| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows), ""]
        elif isinstance(block, Code):
            lines += ["```", block.text, "```", ""]
        elif isinstance(block, FigureRef):
            lines += [f"*Plot: {TITLES[block.key]} (see report.html).*", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} figure{margin:1em 0} figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555} pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
"""


def to_html(report: Report, plots: list[Plot]) -> str:
    by_key = {plot.key: plot for plot in plots}
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>ax evaluation report</title>", f"<style>{_CSS}</style></head><body>"]
    e = html.escape
    for block in blocks(report):
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{e(cell)}</th>" for cell in block.header)
            body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Code):
            parts.append(f"<pre><code>{e(block.text)}</code></pre>")
        elif isinstance(block, FigureRef) and block.key in by_key:
            plot = by_key[block.key]
            data = base64.b64encode(plot.png).decode("ascii")
            parts.append(f"<figure id='plot-{plot.key}'><img class='plot' alt='{e(plot.title)}' "
                         f"src='data:image/png;base64,{data}'><figcaption><b>{e(plot.title)}.</b> "
                         f"{e(plot.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


class ReportFiles(BaseModel):
    json_path: Path
    markdown: Path
    html: Path
    manifest: Path


def write_report(report: Report, out: str | Path) -> ReportFiles:
    """Write report.json, report.md, report.html (plots inline) and manifest.json into ``out``, atomically each."""
    out = Path(out)
    files = ReportFiles(json_path=out / "report.json", markdown=out / "report.md", html=out / "report.html",
                        manifest=out / "manifest.json")
    atomic_write_text(files.json_path, report.model_dump_json(indent=1) + "\n")
    atomic_write_text(files.manifest, report.manifest.model_dump_json(indent=1) + "\n")
    atomic_write_text(files.markdown, to_markdown(report))
    atomic_write_text(files.html, to_html(report, draw_figures(report)))
    return files
