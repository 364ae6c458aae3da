"""Data analytics: answer an aggregate question (sum, mean, max, min, count) over a small table.

Two steps: the LM picks the cells the question is about and the operation; Python
aggregates them. Easy questions cover a whole column; medium ones filter by one value;
hard ones filter by two values, exclude a group ("outside the North region"), or count
rows above a threshold.

Each split has its own kinds of table (headers, groups, periods), layouts, question wordings
and words for the operations; the five operations serve every split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from statistics import mean
from typing import Any, Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render, sentence_case
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


@dataclass(frozen=True)
class Scheme:
    """What a table's rows are: a grouping column, a period column and three numeric columns with their ranges."""

    group: str
    groups: tuple[str, ...]
    period: str
    periods: tuple[str, ...]
    columns: tuple[tuple[str, tuple[int, int]], ...]


# Each split tabulates its own kinds of business, so test tables have headers training never saw.
SCHEMES = [
    Scheme("region", ("North", "South", "East", "West"), "month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun"),
           (("revenue", (20, 400)), ("units", (5, 120)), ("returns", (0, 15)))),
    Scheme("store", ("Downtown", "Airport", "Mall", "Harbor"), "quarter", ("Q1", "Q2", "Q3", "Q4"),
           (("sales", (50, 900)), ("orders", (3, 80)), ("refunds", (0, 12)))),
    Scheme("team", ("Alpha", "Bravo", "Delta", "Echo"), "week", ("W1", "W2", "W3", "W4", "W5", "W6"),
           (("tickets", (5, 200)), ("hours", (8, 160)), ("escalations", (0, 18)))),
    Scheme("channel", ("Web", "Retail", "Phone", "Partner"), "month", ("Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
           (("visits", (100, 2000)), ("signups", (2, 90)), ("cancellations", (0, 20)))),
    Scheme("plant", ("Dayton", "Reno", "Tulsa", "Boise"), "year", ("2019", "2020", "2021", "2022", "2023", "2024"),
           (("output", (100, 800)), ("scrap", (0, 40)), ("downtime", (0, 60)))),
    Scheme("city", ("Austin", "Denver", "Omaha", "Tampa"), "day", ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat"),
           (("bookings", (5, 150)), ("nights", (10, 400)), ("complaints", (0, 9)))),
    Scheme("product", ("Basic", "Plus", "Pro", "Max"), "month", ("Jan", "Feb", "Mar", "Apr", "May", "Jun"),
           (("licenses", (10, 300)), ("trials", (5, 250)), ("churned", (0, 25)))),
    Scheme("warehouse", ("Elm", "Oak", "Pine", "Birch"), "week", ("W1", "W2", "W3", "W4", "W5", "W6"),
           (("shipments", (5, 300)), ("pallets", (20, 500)), ("delays", (0, 14)))),
    Scheme("branch", ("Central", "Eastside", "Westgate", "Lakeshore"), "quarter", ("Q1", "Q2", "Q3", "Q4"),
           (("deposits", (40, 950)), ("loans", (2, 60)), ("defaults", (0, 7)))),
    Scheme("clinic", ("Maple", "Cedar", "Willow", "Spruce"), "month", ("Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
           (("patients", (30, 600)), ("referrals", (1, 70)), ("no_shows", (0, 30)))),
]
# Synonyms for each operation, dealt to splits: a test question names its operation in words training never used.
WORDS = {
    "sum": ["total", "combined", "overall", "aggregate", "summed"],
    "mean": ["average", "mean", "per-row average", "arithmetic mean", "averaged"],
    "max": ["highest", "maximum", "largest", "peak", "top"],
    "min": ["lowest", "minimum", "smallest", "least", "lowest single"],
}
# Table layouts: comma-separated, markdown, tab-separated, semicolon-separated, aligned columns.
LAYOUTS = ["csv", "markdown", "tsv", "semicolon", "aligned"]
# Question phrasings by kind; `{word}` is the operation, `{where}` the filter.
EASY = [
    "[What is|What's] the {word} {column} [across all rows|in the table|over every row]?",
    "Give the {word} {column} over the whole table.",
    "Across every entry, what is the {word} {column}?",
    "Taking the full table into account, report the {word} value of {column}.",
    "{Column}: what is its {word} over all the rows listed?",
]
MEDIUM = [
    "[What is|What's] the {word} {column} {where}?",
    "Give the {word} {column} {where}.",
    "Looking only at rows {where}, what is the {word} {column}?",
    "Report the {word} value of {column} {where}.",
    "{Column} {where}: what is its {word}?",
]
# One filter by group or by period, each phrased five ways.
WHERE_GROUP = ["in the {value} {group}", "for {group} {value}", "where {group} is {value}", "for the {value} {group}",
               "belonging to {group} {value}"]
WHERE_PERIOD = ["in {value}", "for {period} {value}", "where {period} is {value}", "during {value}",
                "recorded in {period} {value}"]
HARD = {
    "exclude": [
        "What is the {word} {column} outside the {value} {group}?",
        "Leaving out {group} {value}, what is the {word} {column}?",
        "Give the {word} {column} over every {group} except {value}.",
        "Ignoring the rows where {group} is {value}, report the {word} {column}.",
        "What {word} {column} do the rows not from {group} {value} show?",
    ],
    "threshold": [
        "How many rows have {column} above {threshold}?",
        "Count the rows whose {column} exceeds {threshold}.",
        "In how many rows is {column} greater than {threshold}?",
        "Number of entries with {column} strictly over {threshold}?",
        "How many rows show more than {threshold} {column}?",
    ],
    "two_periods": [
        "What is the {word} {column} over the {value} rows from {first} and {second}?",
        "For {group} {value}, give the {word} {column} across {period}s {first} and {second}.",
        "Restricting to {group} {value} in {first} or {second}, what is the {word} {column}?",
        "Report the {word} {column} where {group} is {value} and {period} is either {first} or {second}.",
        "Taking {value}'s rows for {first} and {second} only, what is their {word} {column}?",
    ],
}


def _table(rng: random.Random, scheme: Scheme) -> list[dict]:
    cells = rng.sample([(group, period) for group in scheme.groups for period in scheme.periods], rng.randint(6, 10))
    return [{scheme.group: group, scheme.period: period, **{column: rng.randint(*span) for column, span in scheme.columns}}
            for group, period in sorted(cells, key=lambda cell: (scheme.periods.index(cell[1]), cell[0]))]


def _render_table(layout: str, rows: list[dict]) -> str:
    header = list(rows[0])
    body = [[str(row[key]) for key in header] for row in rows]
    if layout == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    if layout == "aligned":
        widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
                         for cells in [header, *body])
    separator = {"csv": ",", "tsv": "\t", "semicolon": ";"}[layout]
    return "\n".join(separator.join(cells) for cells in [header, *body])


def _question(rng: random.Random, scheme: Scheme, rows: list[dict], difficulty: str,
              split: str) -> tuple[str, str, list[dict], str, str]:
    """(question, operation, the rows it selects, the column it reads, its family)."""
    column = rng.choice(scheme.columns)[0]
    operation = rng.choice(list(WORDS))
    word = rng.choice(for_split(WORDS[operation], split))
    group, period = rng.choice(rows)[scheme.group], rng.choice(rows)[scheme.period]
    slots = {"word": word, "column": column, "Column": sentence_case(column), "group": scheme.group,
             "period": scheme.period}
    if difficulty == "easy":
        index = EASY.index(rng.choice(for_split(EASY, split)))
        return render(rng, EASY[index], **slots), operation, rows, column, f"easy/t{index}"
    if difficulty == "medium":
        index = MEDIUM.index(rng.choice(for_split(MEDIUM, split)))
        if rng.random() < 0.5:
            picked = [row for row in rows if row[scheme.group] == group]
            where = rng.choice(for_split(WHERE_GROUP, split)).format(value=group, group=scheme.group)
        else:
            picked = [row for row in rows if row[scheme.period] == period]
            where = rng.choice(for_split(WHERE_PERIOD, split)).format(value=period, period=scheme.period)
        return render(rng, MEDIUM[index], where=where, **slots), operation, picked, column, f"medium/t{index}"
    twist = rng.choice(list(HARD))
    index = HARD[twist].index(rng.choice(for_split(HARD[twist], split)))
    first, second = rng.sample(scheme.periods, 2)
    if twist == "exclude":
        picked = [row for row in rows if row[scheme.group] != group]
    elif twist == "threshold":
        values = sorted(row[column] for row in rows)
        slots["threshold"] = values[rng.randrange(len(values))]
        picked = [row for row in rows if row[column] > slots["threshold"]]
        operation = "count"
    else:
        picked = [row for row in rows if row[scheme.period] in (first, second) and row[scheme.group] == group]
    question = render(rng, HARD[twist][index], value=group, first=first, second=second, **slots)
    return question, operation, picked, column, f"hard/{twist}/t{index}"


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    scheme = rng.choice(for_split(SCHEMES, split))
    rows = _table(rng, scheme)
    question, operation, picked, column, family = _question(rng, scheme, rows, difficulty, split)
    while operation != "count" and not picked:  # a filter that matches nothing has no sum/mean to check
        question, operation, picked, column, family = _question(rng, scheme, rows, difficulty, split)
    cells = [float(row[column]) for row in picked]
    answer = aggregate(operation, cells)
    shown = ", ".join(f"{row[scheme.group]} {row[scheme.period]}={row[column]}" for row in picked) or "no rows"
    layout = rng.choice(for_split(LAYOUTS, split))
    return {"table": _render_table(layout, rows), "question": question, "cells": cells, "operation": operation,
            "answer": answer, "family": f"{family}/{scheme.group}/{layout}",
            "explanation": f"{operation} of {column} over {shown} = {answer:g}."}


DOMAIN = Domain(
    name="data_analytics",
    program=TableQuestion,
    metric=numeric_metric("answer", abs_tol=0.01, details=("operation", "cells")),
    data=lambda: generate_splits("data_analytics", make_item, inputs=("table", "question"), n=DEFAULT_ITEMS),
    task="computation",
    description="Table questions: sum, average, max, min or count over filtered rows of a small sales table.",
    input_fields=("table", "question"),
    label_fields=("answer",),
)
