"""Operations: reorder now or hold, by the reorder-point rule.

Two steps: read stock on hand, daily demand, supplier lead time and safety stock; then in
Python compute reorder point = daily demand * lead time + safety stock and reorder when
stock on hand is at or below it. Easy notes list the four figures; medium ones narrate them
among other numbers; hard ones give demand per week or lead time in weeks, and sit close
to the reorder point.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import label_metric
from ax.programs.modules import ExtractThenCompute, context_field

Decision = Literal["reorder", "hold"]


class ExtractStockFigures(dspy.Signature):
    """From an inventory note, extract units on hand, average daily demand (units per day),
    supplier lead time in days, and safety stock in units."""

    context: str = context_field()
    note: str = dspy.InputField(desc="inventory note for one item")
    on_hand: int = dspy.OutputField()
    daily_demand: float = dspy.OutputField()
    lead_time_days: int = dspy.OutputField()
    safety_stock: int = dspy.OutputField()


class ReorderDecision(ExtractThenCompute):
    extraction = ExtractStockFigures

    def compute(self, figures: dspy.Prediction) -> dict[str, Any]:
        point = reorder_point(figures.daily_demand, figures.lead_time_days, figures.safety_stock)
        return {"reorder_point": point, "decision": "reorder" if figures.on_hand <= point else "hold"}


def reorder_point(daily_demand: float, lead_time_days: int, safety_stock: int) -> float:
    return round(daily_demand * lead_time_days + safety_stock, 2)


ITEMS = [("SKU-1042", "boxes of nitrile gloves"), ("SKU-2230", "toner cartridges"), ("SKU-3318", "packs of M8 hex bolts"),
         ("SKU-4471", "shipping cartons"), ("SKU-5096", "hydraulic filters"), ("SKU-6120", "bags of coffee beans"),
         ("SKU-7345", "safety goggles"), ("SKU-8802", "rolls of pallet wrap"), ("SKU-9013", "packs of AA batteries")]
DISTRACTORS = ["Standard order quantity is {eoq} units.", "Demand peaked at {peak} units on one day last month.",
               "Warehouse capacity for this item is {capacity} units.", "Unit cost is ${cost}."]


def make_item(rng: random.Random, difficulty: str) -> dict:
    sku, item = rng.choice(ITEMS)
    demand = rng.randint(5, 120)
    weeks = rng.randint(1, 4)
    lead = 7 * weeks if difficulty == "hard" and rng.random() < 0.5 else rng.randint(2, 30)
    safety = rng.randint(0, 60) * 10
    point = reorder_point(demand, lead, safety)
    decision = rng.choice(["reorder", "hold"])
    # Hard items sit within 5% of the reorder point; easy ones far from it.
    margin = {"easy": (0.3, 0.6), "medium": (0.1, 0.3), "hard": (0.0, 0.05)}[difficulty]
    gap = round(point * rng.uniform(*margin))
    on_hand = int(point) - gap if decision == "reorder" else int(point) + max(1, gap)
    slots = {"sku": sku, "item": item, "on_hand": f"{on_hand:,}", "demand": demand, "lead": lead, "safety": safety,
             "weekly": demand * 7, "weeks": f"{lead // 7} week{'s' if lead > 7 else ''}", "eoq": rng.randint(5, 60) * 50, "peak": demand * rng.randint(2, 4),
             "capacity": rng.randint(20, 90) * 100, "cost": f"{rng.uniform(0.5, 80):.2f}"}
    if difficulty == "easy":
        note = render(rng, "{sku} ({item}): on hand {on_hand} units; average daily demand {demand} units; supplier lead time "
                           "{lead} days; safety stock {safety} units.", **slots)
    else:
        demand_text = "{weekly} units per week" if difficulty == "hard" else "{demand} units a day"
        lead_text = "{weeks}" if difficulty == "hard" and lead % 7 == 0 else "{lead} days"
        sentences = ["We have {on_hand} {item} ({sku}) [in the warehouse|on the shelves|in stock] today.",
                     f"[We use|Customers take|We ship] {demand_text} on average.",
                     f"The supplier [needs|takes|quotes] {lead_text} to deliver.",
                     "Policy is to keep {safety} units as safety stock."]
        sentences[1:] = rng.sample(sentences[1:], 3)
        sentences.insert(rng.randint(1, len(sentences)), rng.choice(DISTRACTORS))
        note = render(rng, " ".join(sentences), **slots)
    relation = "at or below" if decision == "reorder" else "above"
    return {"note": note, "on_hand": on_hand, "daily_demand": float(demand), "lead_time_days": lead, "safety_stock": safety,
            "reorder_point": point, "decision": decision,
            "explanation": f"reorder point = {demand}/day * {lead} days + {safety} safety stock = {point:g}; "
                           f"{on_hand} on hand is {relation} it, so {decision}."}


DOMAIN = Domain(
    name="operations",
    program=ReorderDecision,
    metric=label_metric("decision", details=("on_hand", "daily_demand", "lead_time_days", "safety_stock", "reorder_point")),
    data=lambda: generate_examples("operations", make_item, inputs=("note",), n=DEFAULT_ITEMS),
    task="computation",
    description="Inventory control: reorder or hold, from on-hand stock, demand, lead time and safety stock.",
    input_fields=("note",),
    label_fields=("decision",),
)
