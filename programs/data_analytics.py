"""Data analytics: answer an aggregate question (sum, mean, max, min, count) over a small table.

Two steps: the LM picks the cells the question is about and the operation; Python
aggregates them. Easy questions cover a whole column; medium ones filter by one value;
hard ones filter by two values, exclude a group ("outside the North region"), or count
rows above a threshold.
"""

from __future__ import annotations

import random
from statistics import mean
from typing import Any, Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import numeric_metric
from ax.programs.modules import ExtractThenCompute, context_field

Operation = Literal["sum", "mean", "max", "min", "count"]


class SelectCells(dspy.Signature):
    """List the table cells the question is about (after applying its filters) and the
    operation that answers it. For "how many rows" questions, list the matching rows' cells
    of the compared column and use count."""

    context: str = context_field()
    table: str = dspy.InputField(desc="CSV or markdown table")
    question: str = dspy.InputField()
    cells: list[float] = dspy.OutputField(desc="the selected numbers")
    operation: Operation = dspy.OutputField()


class TableQuestion(ExtractThenCompute):
    extraction = SelectCells

    def compute(self, figures: dspy.Prediction) -> dict[str, Any]:
        return {"answer": aggregate(figures.operation, figures.cells)}


def aggregate(operation: str, cells: list[float]) -> float:
    if operation == "count":
        return float(len(cells))
    if not cells:
        return float("nan")
    function = {"sum": sum, "mean": mean, "max": max, "min": min}[operation]
    return round(float(function(cells)), 2)


REGIONS = ["North", "South", "East", "West"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
COLUMNS = {"revenue": (20, 400), "units": (5, 120), "returns": (0, 15)}  # ranges of the generated values
WORDS = {"sum": "total", "mean": "average", "max": "highest", "min": "lowest"}


def _table(rng: random.Random) -> list[dict]:
    cells = rng.sample([(region, month) for region in REGIONS for month in MONTHS], rng.randint(6, 10))
    return [{"region": region, "month": month, **{column: rng.randint(*span) for column, span in COLUMNS.items()}}
            for region, month in sorted(cells, key=lambda cell: (MONTHS.index(cell[1]), cell[0]))]


def _render_table(rng: random.Random, rows: list[dict]) -> str:
    header = list(rows[0])
    if rng.random() < 0.5:
        return "\n".join([",".join(header), *(",".join(str(row[key]) for key in header) for row in rows)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows])


def _question(rng: random.Random, rows: list[dict], difficulty: str) -> tuple[str, str, list[dict], str]:
    """(question, operation, the rows it selects, the column it reads)."""
    column = rng.choice(list(COLUMNS))
    operation = rng.choice(list(WORDS))
    region, month = rng.choice(rows)["region"], rng.choice(rows)["month"]
    if difficulty == "easy":
        question = render(rng, "[What is|What's] the {word} {column} [across all rows|in the table|over every row]?",
                          word=WORDS[operation], column=column)
        return question, operation, rows, column
    if difficulty == "medium":
        if rng.random() < 0.5:
            picked = [row for row in rows if row["region"] == region]
            where = f"in the {region} region"
        else:
            picked = [row for row in rows if row["month"] == month]
            where = f"in {month}"
        question = render(rng, "[What is|What's] the {word} {column} {where}?", word=WORDS[operation], column=column,
                          where=where)
        return question, operation, picked, column
    twist = rng.choice(["exclude", "threshold", "two_months"])
    if twist == "exclude":
        picked = [row for row in rows if row["region"] != region]
        question = f"What is the {WORDS[operation]} {column} outside the {region} region?"
    elif twist == "threshold":
        values = sorted(row[column] for row in rows)
        threshold = values[rng.randrange(len(values))]
        picked = [row for row in rows if row[column] > threshold]
        operation = "count"
        question = f"How many rows have {column} above {threshold}?"
    else:
        first, second = rng.sample(MONTHS, 2)
        picked = [row for row in rows if row["month"] in (first, second) and row["region"] == region]
        question = f"What is the {WORDS[operation]} {column} over the {region} rows from {first} and {second}?"
    return question, operation, picked, column


def make_item(rng: random.Random, difficulty: str) -> dict:
    rows = _table(rng)
    question, operation, picked, column = _question(rng, rows, difficulty)
    while operation != "count" and not picked:  # a filter that matches nothing has no sum/mean to check
        question, operation, picked, column = _question(rng, rows, difficulty)
    cells = [float(row[column]) for row in picked]
    answer = aggregate(operation, cells)
    shown = ", ".join(f"{row['region']} {row['month']}={row[column]}" for row in picked) or "no rows"
    return {"table": _render_table(rng, rows), "question": question, "cells": cells, "operation": operation,
            "answer": answer, "explanation": f"{operation} of {column} over {shown} = {answer:g}."}


DOMAIN = Domain(
    name="data_analytics",
    program=TableQuestion,
    metric=numeric_metric("answer", abs_tol=0.01, details=("operation", "cells")),
    data=lambda: generate_examples("data_analytics", make_item, inputs=("table", "question"), n=DEFAULT_ITEMS),
    task="computation",
    description="Table questions: sum, average, max, min or count over filtered rows of a small sales table.",
    input_fields=("table", "question"),
    label_fields=("answer",),
)
