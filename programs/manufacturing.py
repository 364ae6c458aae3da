"""Manufacturing: the defect rate (%) of a production shift from its quality report.

Two steps: read units inspected and units defective, then compute 100 * defective /
inspected in Python. Easy reports state both counts; medium ones surround them with
downtime, shipments and targets; hard ones split defects into categories to add up, give
the number that passed instead, or quote the previous shift.

Each split has its own report wordings, products, lines, shifts, defect categories and targets.
"""

from __future__ import annotations

import random
from typing import Any

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
from ax.programs.metrics import numeric_metric
from ax.programs.modules import ExtractThenCompute, context_field


class ExtractQualityCounts(dspy.Signature):
    """From a shift quality report, extract how many units were inspected this shift and how many of them were defective."""

    context: str = context_field()
    report: str = dspy.InputField(desc="shift quality report")
    units_inspected: int = dspy.OutputField()
    units_defective: int = dspy.OutputField()


class DefectRate(ExtractThenCompute):
    extraction = ExtractQualityCounts

    def compute(self, figures: dspy.Prediction) -> dict[str, Any]:
        return {"defect_rate": defect_rate(figures.units_defective, figures.units_inspected)}


def defect_rate(defective: int, inspected: int) -> float:
    return round(100 * defective / inspected, 2) if inspected else float("nan")


PRODUCTS = ["brake calipers", "circuit boards", "glass bottles", "injection-molded housings", "steel brackets",
            "solar panels", "gear shafts", "valve bodies", "LED drivers", "plastic caps", "aluminum extrusions",
            "rubber gaskets", "ceramic tiles", "bicycle frames", "pump impellers"]
LINES = ["Line 1", "Line 2", "Line 3", "Line A", "Line B", "Cell 7", "Press 4", "Assembly 2", "Cell 12", "Line C",
         "Press 9", "Assembly 5", "Line 6", "Cell 3", "Molding 8"]
SHIFTS = ["morning", "day", "afternoon", "night", "weekend", "early", "late", "swing", "graveyard", "overtime"]
# At least three per split: a hard report can list three categories.
CATEGORIES = ["scratched", "misaligned", "cracked", "short-filled", "mislabeled", "out of tolerance", "discolored",
              "warped", "porous", "burred", "dented", "undersized", "unsealed", "contaminated", "delaminated"]
TARGETS = ["1.5", "2", "2.5", "3", "1", "3.5", "4", "0.8", "1.2", "2.2"]
# Both counts under the field's own labels: what a 135M model can copy without help.
EASY = [
    "[{line}, {shift} shift|Shift report ({line}, {shift})], {product}.\n[Units inspected|Inspected units]: {n}\n"
    "[Units defective|Defective units]: {d}",
    "{product} — {line} / {shift} shift. Units inspected {n}; units defective {d}.",
    "QC summary for {line} ({shift} shift, {product}): inspected units = {n}, defective units = {d}.",
    "Inspection log, {shift} shift\nLine: {line}\nPart: {product}\nInspected: {n} units\nDefective: {d} units",
    "On {line} this {shift} shift, {n} units of {product} were inspected and {d} units were found defective.",
]
# The counts among downtime, shipments and the defect target.
MEDIUM = [
    "{line} ran the {shift} shift with {down} minutes of downtime. Quality [inspected|checked] {n} {product} "
    "and rejected {d}. {shipped} units shipped to the warehouse; the defect target is {target}%.",
    "{shift_cap} shift, {line}: {down} min lost to a jam. Inspectors examined {n} {product}, pulling {d} as "
    "nonconforming. Target defect rate {target}%; {shipped} moved to finished goods.",
    "After {down} minutes of stoppage, {line} finished the {shift} shift. {shipped} {product} left for the dock. "
    "QA looked at {n} pieces and scrapped {d}, against a {target}% goal.",
    "The {shift} crew on {line} sampled every one of the {n} {product} they built and set aside {d} for rework. "
    "Logged downtime: {down} minutes. Shipped: {shipped}. Allowed defect level: {target}%.",
    "Quality note — {line}, {shift} shift. Reject count {d} out of {n} {product} put through the gauge. "
    "{shipped} went out; downtime totalled {down} minutes and the plant aims for under {target}% defects.",
]
# Hard twists: the defects split into categories, the number that passed instead, or last shift's counts as decoy.
HARD = {
    "categories": [
        "{line}, {shift} shift: {n} {product} went through final inspection. Rejects: {listed}. Downtime {down} minutes.",
        "Final check on {line} ({shift} shift) covered {n} {product}; the failures were {listed}.",
        "{n} {product} inspected during the {shift} shift on {line}. Defects found — {listed}. {down} minutes idle.",
        "The inspectors on {line} went over {n} {product} in the {shift} shift and tagged {listed}.",
        "Reject breakdown for {line}, {shift} shift ({n} {product} examined): {listed}. Stoppages: {down} min.",
    ],
    "passed": [
        "{line} {shift} shift: of the {n} {product} inspected, {passed} passed. {shipped} were shipped.",
        "Out of {n} {product} checked on {line} during the {shift} shift, {passed} met spec; the rest failed.",
        "{passed} of the {n} {product} examined on the {shift} shift ({line}) were accepted. Shipped: {shipped}.",
        "{line}, {shift} shift — {n} {product} inspected, {passed} cleared inspection, {shipped} sent out.",
        "Inspection passed {passed} {product} from a lot of {n} on {line} ({shift} shift); everything else was rejected.",
    ],
    "previous": [
        "Previous shift: {pd} rejects out of {pn}. This {shift} shift on {line}: {n} {product} inspected, {d} rejected, "
        "{down} minutes of downtime.",
        "{line}, {shift} shift: {n} {product} inspected and {d} defective. (Shift before: {pn} inspected, {pd} defective.)",
        "Yesterday's comparable shift rejected {pd} of {pn}. Today's {shift} shift on {line} checked {n} {product} "
        "and rejected {d}.",
        "Handover note for {line}: the outgoing crew reported {pd} bad units from {pn}; our {shift} shift inspected "
        "{n} {product} and found {d} bad.",
        "This {shift} shift ({line}) — inspected {n} {product}, defects {d}. For comparison, last shift: {pn} "
        "inspected, {pd} defects.",
    ],
}


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    inspected = rng.randint(20, 600) * 10
    defective = max(2, round(inspected * rng.uniform(0.004, 0.12)))  # 2+: the categories twist splits it
    shift = rng.choice(for_split(SHIFTS, split))
    slots = {"line": rng.choice(for_split(LINES, split)), "shift": shift, "shift_cap": shift.capitalize(),
             "product": rng.choice(for_split(PRODUCTS, split)), "n": f"{inspected:,}", "d": f"{defective:,}",
             "down": rng.randint(5, 95), "shipped": f"{inspected - defective - rng.randint(0, 40):,}",
             "target": rng.choice(for_split(TARGETS, split))}
    how = f"{defective} defective of {inspected} inspected"
    if difficulty == "hard":
        twist = rng.choice(list(HARD))
        pool = HARD[twist]
        family = f"hard/{twist}"
    else:
        pool = EASY if difficulty == "easy" else MEDIUM
        family = difficulty
    index = pool.index(rng.choice(for_split(pool, split)))
    if difficulty != "hard":
        report = render(rng, pool[index], **slots)
    elif twist == "categories":
        parts = _split(rng, defective, rng.randint(2, 3))
        names = rng.sample(for_split(CATEGORIES, split), len(parts))
        listed = ", ".join(f"{count} {name}" for count, name in zip(parts[:-1], names)) + f" and {parts[-1]} {names[-1]}"
        report = render(rng, pool[index], listed=listed, **slots)
        how += f" (defects add up: {' + '.join(map(str, parts))})"
    elif twist == "passed":
        report = render(rng, pool[index], passed=f"{inspected - defective:,}", **slots)
        how += f" (defective = {inspected} - {inspected - defective} passed)"
    else:
        report = render(rng, pool[index], pn=f"{rng.randint(20, 600) * 10:,}", pd=f"{rng.randint(5, 90)}", **slots)
        how += " (the previous shift's counts do not count)"
    rate = defect_rate(defective, inspected)
    return {"report": report, "units_inspected": inspected, "units_defective": defective, "defect_rate": rate,
            "family": f"{family}/t{index}", "explanation": f"{how}: 100 * {defective} / {inspected} = {rate}%."}


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` (at least 2) as 2..`parts` positive counts."""
    parts = min(parts, total)
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [high - low for low, high in zip([0, *cuts], [*cuts, total])]


DOMAIN = Domain(
    name="manufacturing",
    program=DefectRate,
    metric=numeric_metric("defect_rate", abs_tol=0.01, details=("units_inspected", "units_defective")),
    data=lambda: generate_splits("manufacturing", make_item, inputs=("report",), n=DEFAULT_ITEMS),
    task="computation",
    description="Quality control: defect rate (%) of a production shift from its inspection report.",
    input_fields=("report",),
    label_fields=("defect_rate",),
)
