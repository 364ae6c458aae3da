"""Financial: a ratio (current ratio, margins, leverage, coverage...) from reported figures.

Two steps, as an analyst works: pick the numerator and denominator out of the report, then
divide (in Python). Easy reports contain just the two figures under their textbook names, in thousands;
medium ones add other line items; hard ones mix "$1.2 million" with "$850 thousand", add
prior-year figures, or ask for the quick ratio (current assets minus inventory).
"""

from __future__ import annotations

import random
from typing import Any

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, money, money_short, render
from ax.programs.metrics import numeric_metric
from ax.programs.modules import ExtractThenCompute, context_field

# ratio -> (numerator line item, denominator line item); "quick ratio" subtracts inventory.
RATIOS = {
    "current ratio": ("current assets", "current liabilities"),
    "debt-to-equity ratio": ("total liabilities", "shareholders' equity"),
    "net profit margin": ("net income", "revenue"),
    "gross margin": ("gross profit", "revenue"),
    "return on assets": ("net income", "total assets"),
    "interest coverage ratio": ("operating income", "interest expense"),
    "asset turnover": ("revenue", "total assets"),
    "quick ratio": ("current assets", "current liabilities"),
}
SIMPLE_RATIOS = [name for name in RATIOS if name != "quick ratio"]


class ExtractRatioFigures(dspy.Signature):
    """Find the two figures the requested financial ratio divides, in plain dollars
    ("$1.2 million" is 1200000). The ratio is numerator / denominator."""

    context: str = context_field()
    report: str = dspy.InputField(desc="excerpt of a financial report")
    ratio_name: str = dspy.InputField()
    numerator: float = dspy.OutputField()
    denominator: float = dspy.OutputField()


class FinancialRatio(ExtractThenCompute):
    extraction = ExtractRatioFigures

    def compute(self, figures: dspy.Prediction) -> dict[str, Any]:
        return {"ratio": ratio(figures.numerator, figures.denominator)}


def ratio(numerator: float, denominator: float) -> float:
    """Four decimals: enough for margins like 0.0825 to be compared exactly."""
    return round(numerator / denominator, 4) if denominator else float("nan")


def _round(amount: float) -> int:
    """Multiples of $10,000, so "$1.23 million" and "$850 thousand" stay exact."""
    return max(10_000, round(amount / 10_000) * 10_000)


def _statement(rng: random.Random) -> dict[str, int]:
    """A coherent set of line items in dollars (margins, leverage and liquidity in realistic ranges)."""
    revenue = _round(rng.uniform(1e6, 5e7))
    operating_income = _round(revenue * rng.uniform(0.05, 0.25))
    current_assets = _round(rng.uniform(5e5, 2e7))
    total_assets = _round(current_assets * rng.uniform(1.5, 3.5))
    total_liabilities = _round(total_assets * rng.uniform(0.3, 0.75))
    return {
        "revenue": revenue,
        "gross profit": _round(revenue * rng.uniform(0.2, 0.7)),
        "operating income": operating_income,
        "interest expense": _round(operating_income / rng.uniform(2, 12)),
        "net income": _round(operating_income * rng.uniform(0.4, 0.8)),
        "current assets": current_assets,
        "inventory": _round(current_assets * rng.uniform(0.15, 0.5)),
        "current liabilities": _round(current_assets / rng.uniform(0.6, 2.5)),
        "total assets": total_assets,
        "total liabilities": total_liabilities,
        "shareholders' equity": total_assets - total_liabilities,
    }


COMPANIES = ["Northwind Traders", "Bluefin Foods", "Apex Tooling", "Harlow Media", "Quarry Stone Inc.", "Meridian Health",
             "Solstice Apparel", "Tidewater Freight", "Orchid Pharma", "Vantage Software", "Copperline Mining", "Lark Hotels"]


def make_item(rng: random.Random, difficulty: str) -> dict:
    name = rng.choice(SIMPLE_RATIOS + (["quick ratio"] * 2 if difficulty == "hard" else []))
    top, bottom = RATIOS[name]
    lines = _statement(rng)
    numerator = lines[top] - (lines["inventory"] if name == "quick ratio" else 0)
    denominator = lines[bottom]
    shown = {top, bottom} | ({"inventory"} if name == "quick ratio" else set())
    if difficulty != "easy":
        shown |= set(rng.sample(sorted(set(lines) - shown), 3 if difficulty == "medium" else 4))
    order = sorted(shown, key=lambda item: list(lines).index(item))
    mixed_units = difficulty == "hard"

    def fmt(amount: int) -> str:
        return rng.choice([money, money_short])(amount) if mixed_units else money(amount)

    if difficulty == "easy":
        # Two labelled figures in thousands (a ratio does not depend on the unit): what a 135M model can copy.
        report = render(rng, "{company}, [year-end figures|figures for the year] in $ thousands. {a}: {va}. {b}: {vb}.",
                        company=rng.choice(COMPANIES), a=top.capitalize(), va=f"{lines[top] // 1000:,}",
                        b=bottom.capitalize(), vb=f"{lines[bottom] // 1000:,}")
    else:
        report_lines = [f"{item.capitalize()}: {fmt(lines[item])}" for item in order]
        if difficulty == "hard":
            prior = rng.choice([top, bottom])
            before = _round(lines[prior] * rng.uniform(0.7, 0.95))
            report_lines.append(f"Prior-year {prior}: {fmt(before)}")
            rng.shuffle(report_lines)
        report = f"{rng.choice(COMPANIES)}, fiscal {rng.randint(2015, 2024)}. " + "; ".join(report_lines) + "."
    formula = f"({top} {money(lines[top])} - inventory {money(lines['inventory'])})" if name == "quick ratio" else f"{top} {money(numerator)}"
    gold = ratio(numerator, denominator)
    return {"report": report, "ratio_name": name, "numerator": float(numerator), "denominator": float(denominator),
            "ratio": gold, "explanation": f"{name} = {formula} / {bottom} {money(denominator)} = {gold}."}


DOMAIN = Domain(
    name="financial",
    program=FinancialRatio,
    metric=numeric_metric("ratio", rel_tol=0.01, abs_tol=0.0005, details=("numerator", "denominator")),
    data=lambda: generate_examples("financial", make_item, inputs=("report", "ratio_name"), n=DEFAULT_ITEMS),
    task="computation",
    description="Financial ratios (current, quick, debt-to-equity, margins, ROA, coverage, turnover) from reported figures.",
    input_fields=("report", "ratio_name"),
    label_fields=("ratio",),
)
