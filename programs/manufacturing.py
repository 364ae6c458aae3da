"""Manufacturing: the defect rate (%) of a production shift from its quality report.

Two steps: read units inspected and units defective, then compute 100 * defective /
inspected in Python. Easy reports state both counts; medium ones surround them with
downtime, shipments and targets; hard ones split defects into categories to add up, give
the number that passed instead, or quote the previous shift.
"""

from __future__ import annotations

import random
from typing import Any

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
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
            "solar panels", "gear shafts", "valve bodies", "LED drivers", "plastic caps"]
LINES = ["Line 1", "Line 2", "Line 3", "Line A", "Line B", "Cell 7", "Press 4", "Assembly 2"]
SHIFTS = ["morning", "day", "afternoon", "night", "weekend"]
CATEGORIES = ["scratched", "misaligned", "cracked", "short-filled", "mislabeled", "out of tolerance", "discolored"]


def make_item(rng: random.Random, difficulty: str) -> dict:
    inspected = rng.randint(20, 600) * 10
    defective = max(2, round(inspected * rng.uniform(0.004, 0.12)))  # 2+: the categories twist splits it
    slots = {"line": rng.choice(LINES), "shift": rng.choice(SHIFTS), "product": rng.choice(PRODUCTS),
             "n": f"{inspected:,}", "d": f"{defective:,}", "down": rng.randint(5, 95),
             "shipped": f"{inspected - defective - rng.randint(0, 40):,}", "target": rng.choice(["1.5", "2", "2.5", "3"])}
    how = f"{defective} defective of {inspected} inspected"
    if difficulty == "easy":
        # Counts under the field's own labels: what a 135M model can copy without help.
        report = render(rng, "[{line}, {shift} shift|Shift report ({line}, {shift})], {product}.\n"
                             "[Units inspected|Inspected units]: {n}\n[Units defective|Defective units]: {d}", **slots)
    elif difficulty == "medium":
        report = render(rng, "{line} ran the {shift} shift with {down} minutes of downtime. Quality [inspected|checked] {n} {product} "
                             "and rejected {d}. {shipped} units shipped to the warehouse; the defect target is {target}%.", **slots)
    else:
        twist = rng.choice(["categories", "passed", "previous"])
        previous = {"pn": f"{rng.randint(20, 600) * 10:,}", "pd": f"{rng.randint(5, 90)}"}
        if twist == "categories":
            parts = _split(rng, defective, rng.randint(2, 3))
            names = rng.sample(CATEGORIES, len(parts))
            listed = ", ".join(f"{count} {name}" for count, name in zip(parts[:-1], names)) + f" and {parts[-1]} {names[-1]}"
            report = render(rng, "{line}, {shift} shift: {n} {product} went through final inspection. Rejects: {listed}. "
                                 "Downtime {down} minutes.", listed=listed, **slots)
            how += f" (defects add up: {' + '.join(map(str, parts))})"
        elif twist == "passed":
            report = render(rng, "{line} {shift} shift: of the {n} {product} inspected, {passed} passed. {shipped} were shipped.",
                            passed=f"{inspected - defective:,}", **slots)
            how += f" (defective = {inspected} - {inspected - defective} passed)"
        else:
            report = render(rng, "Previous shift: {pd} rejects out of {pn}. This {shift} shift on {line}: {n} {product} "
                                 "inspected, {d} rejected, {down} minutes of downtime.", **previous, **slots)
            how += " (the previous shift's counts do not count)"
    rate = defect_rate(defective, inspected)
    return {"report": report, "units_inspected": inspected, "units_defective": defective, "defect_rate": rate,
            "explanation": f"{how}: 100 * {defective} / {inspected} = {rate}%."}


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` (at least 2) as 2..`parts` positive counts."""
    parts = min(parts, total)
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [high - low for low, high in zip([0, *cuts], [*cuts, total])]


DOMAIN = Domain(
    name="manufacturing",
    program=DefectRate,
    metric=numeric_metric("defect_rate", abs_tol=0.01, details=("units_inspected", "units_defective")),
    data=lambda: generate_examples("manufacturing", make_item, inputs=("report",), n=DEFAULT_ITEMS),
    task="computation",
    description="Quality control: defect rate (%) of a production shift from its inspection report.",
    input_fields=("report",),
    label_fields=("defect_rate",),
)
