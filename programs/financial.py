"""Financial: a ratio (current ratio, margins, leverage, coverage...) from reported figures.

Two steps, as an analyst works: pick the numerator and denominator out of the report, then
divide (in Python). Easy reports contain just the two figures under their textbook names, in thousands;
medium ones add other line items; hard ones mix "$1.2 million" with "$850 thousand", add
prior-year figures, or ask for the quick ratio (current assets minus inventory).

Each split has its own companies, fiscal years, report layouts and prior-year wordings; the
ratios themselves serve every split, as labels do, since they are what the model is asked for.
"""

from __future__ import annotations

import random
from typing import Any

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, money, money_short, render, sentence_case
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
             "Solstice Apparel", "Tidewater Freight", "Orchid Pharma", "Vantage Software", "Copperline Mining", "Lark Hotels",
             "Granite Ridge Dairy", "Skyward Avionics", "Pellucid Optics", "Redfern Logistics", "Ashgrove Furniture",
             "Kestrel Energy", "Marlowe Books", "Oakhaven Farms"]
# Fiscal years are dealt to splits too, so no test report carries a year seen in training.
YEARS = list(range(2005, 2025))
# Two figures in thousands under their textbook names: `{a}`/`{b}` are the line items, `{va}`/`{vb}` the amounts.
EASY = [
    "{company}, [year-end figures|figures for the year] in $ thousands. {A}: {va}. {B}: {vb}.",
    "{company} ($000s) — {A} {va}; {B} {vb}.",
    "Amounts in thousands of dollars for {company}: {a} = {va}, {b} = {vb}.",
    "{company} reports {a} of {va} and {b} of {vb} (USD, thousands).",
    "{A}: {va}\n{B}: {vb}\n[Source|From]: {company} accounts, all amounts in $ thousands.",
]
# Report layouts: a heading, how one line item is written, and what joins the lines.
LAYOUTS = [
    ("{company}, fiscal {year}. ", "{Item}: {amount}", "; ", "."),
    ("{company} — selected figures, FY{year}\n", "- {Item}: {amount}", "\n", ""),
    ("Annual report extract ({company}, {year}):\n", "{Item} .... {amount}", "\n", ""),
    ("{company} reported the following for {year}: ", "{item} of {amount}", ", ", "."),
    ("| Line item ({company}, {year}) | Amount |\n|---|---|\n", "| {Item} | {amount} |", "\n", ""),
    ("{company}, {year} statement. ", "{Item} stood at {amount}.", " ", ""),
    ("FY{year} | {company}\n", "{Item} = {amount}", "\n", ""),
    ("Key figures for {company} in fiscal year {year}: ", "{Item} {amount}", " / ", "."),
    ("In its {year} filing, {company} lists ", "{amount} in {item}", "; ", "."),
    ("From the {year} accounts of {company} —\n", "{Item}: {amount}", "\n", ""),
]
# How a hard report labels the decoy figure from the year before.
PRIOR = ["prior-year {item}", "{item} a year earlier", "last year's {item}", "{item} (previous year)", "{item} for {previous}"]


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    name = rng.choice(SIMPLE_RATIOS + (["quick ratio"] * 2 if difficulty == "hard" else []))
    top, bottom = RATIOS[name]
    lines = _statement(rng)
    numerator = lines[top] - (lines["inventory"] if name == "quick ratio" else 0)
    denominator = lines[bottom]
    shown = {top, bottom} | ({"inventory"} if name == "quick ratio" else set())
    if difficulty != "easy":
        shown |= set(rng.sample(sorted(set(lines) - shown), 3 if difficulty == "medium" else 4))
    order = sorted(shown, key=lambda item: list(lines).index(item))
    company, year = rng.choice(for_split(COMPANIES, split)), rng.choice(for_split(YEARS, split))
    mixed_units = difficulty == "hard"

    def fmt(amount: int) -> str:
        return rng.choice([money, money_short])(amount) if mixed_units else money(amount)

    if difficulty == "easy":
        # Two labelled figures in thousands (a ratio does not depend on the unit): what a 135M model can copy.
        index = EASY.index(rng.choice(for_split(EASY, split)))
        report = render(rng, EASY[index], company=company, a=top, A=sentence_case(top), va=f"{lines[top] // 1000:,}",
                        b=bottom, B=sentence_case(bottom), vb=f"{lines[bottom] // 1000:,}")
    else:
        index = LAYOUTS.index(rng.choice(for_split(LAYOUTS, split)))
        heading, line, joiner, end = LAYOUTS[index]
        items = [(item, lines[item]) for item in order]
        if difficulty == "hard":
            prior = rng.choice([top, bottom])
            label = rng.choice(for_split(PRIOR, split)).format(item=prior, previous=year - 1)
            items.append((label, _round(lines[prior] * rng.uniform(0.7, 0.95))))
            rng.shuffle(items)
        body = joiner.join(line.format(item=item, Item=sentence_case(item), amount=fmt(amount)) for item, amount in items)
        report = heading.format(company=company, year=year) + body + end
    formula = f"({top} {money(lines[top])} - inventory {money(lines['inventory'])})" if name == "quick ratio" else f"{top} {money(numerator)}"
    gold = ratio(numerator, denominator)
    return {"report": report, "ratio_name": name, "numerator": float(numerator), "denominator": float(denominator),
            "ratio": gold, "family": f"{difficulty}/t{index}",
            "explanation": f"{name} = {formula} / {bottom} {money(denominator)} = {gold}."}


DOMAIN = Domain(
    name="financial",
    program=FinancialRatio,
    metric=numeric_metric("ratio", rel_tol=0.01, abs_tol=0.0005, details=("numerator", "denominator")),
    data=lambda: generate_splits("financial", make_item, inputs=("report", "ratio_name"), n=DEFAULT_ITEMS),
    task="computation",
    description="Financial ratios (current, quick, debt-to-equity, margins, ROA, coverage, turnover) from reported figures.",
    input_fields=("report", "ratio_name"),
    label_fields=("ratio",),
)
