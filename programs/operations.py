"""Operations: reorder now or hold, by the reorder-point rule.

Two steps: read stock on hand, daily demand, supplier lead time and safety stock; then in
Python compute reorder point = daily demand * lead time + safety stock and reorder when
stock on hand is at or below it. Easy notes list the four figures; medium ones narrate them
among other numbers; hard ones give demand per week or lead time in weeks, and sit close
to the reorder point.

Each split has its own items, note wordings, demand phrasings and distracting facts.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
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
         ("SKU-7345", "safety goggles"), ("SKU-8802", "rolls of pallet wrap"), ("SKU-9013", "packs of AA batteries"),
         ("SKU-1187", "cases of bottled water"), ("SKU-2564", "printer paper reams"), ("SKU-3905", "spools of copper wire"),
         ("SKU-4728", "disposable face masks"), ("SKU-5371", "replacement drill bits"), ("SKU-6649", "tubes of sealant")]
DISTRACTORS = ["Standard order quantity is {eoq} units.", "Demand peaked at {peak} units on one day last month.",
               "Warehouse capacity for this item is {capacity} units.", "Unit cost is ${cost}.",
               "The last purchase order was for {eoq} units.", "Shelf space allows up to {capacity} units.",
               "The busiest day this quarter saw {peak} units go out.", "Each unit costs ${cost} from the vendor.",
               "A full pallet holds {pallet} units.", "The minimum order the supplier accepts is {eoq} units."]
# The four figures under their own labels.
EASY = [
    "{sku} ({item}): on hand {on_hand} units; average daily demand {demand} units; supplier lead time {lead} days; "
    "safety stock {safety} units.",
    "Item {sku} — {item}\nOn hand: {on_hand} units\nAverage daily demand: {demand} units\n"
    "Supplier lead time: {lead} days\nSafety stock: {safety} units",
    "{item} ({sku}) | on-hand {on_hand} | avg daily demand {demand} | lead time {lead} days | safety stock {safety}",
    "Reorder check for {sku} ({item}). Units on hand = {on_hand}. Daily demand (average) = {demand}. "
    "Lead time = {lead} days. Safety stock = {safety} units.",
    "{item}, {sku}: {on_hand} units on hand, {demand} units average daily demand, {lead}-day supplier lead time, "
    "{safety} units safety stock.",
]
# Narrated notes: (stock on hand, demand, lead time, safety stock) sentences; `{rate}` and `{wait}` carry the units.
NARRATIONS = [
    ("We have {on_hand} {item} ({sku}) [in the warehouse|on the shelves|in stock] today.",
     "[We use|Customers take|We ship] {rate} on average.", "The supplier [needs|takes|quotes] {wait} to deliver.",
     "Policy is to keep {safety} units as safety stock."),
    ("Stock count for {sku}, {item}: {on_hand} units on hand.", "Average consumption runs at {rate}.",
     "Replenishment orders arrive {wait} after they are placed.", "A buffer of {safety} units is held as safety stock."),
    ("{sku} ({item}) — {on_hand} units currently sit in the stockroom.", "Typical demand: {rate}.",
     "Lead time from the vendor is {wait}.", "Safety stock is set at {safety} units."),
    ("This morning's cycle count found {on_hand} units of {sku}, our {item}.", "Orders draw it down by {rate} on average.",
     "Once a purchase order goes out, the goods take {wait} to land.",
     "Planners want {safety} units kept in reserve as safety stock."),
    ("Inventory for {item} (item {sku}) stands at {on_hand} units.", "Sales average {rate}.",
     "Our vendor's delivery lead time is {wait}.", "The safety-stock level for this item is {safety} units."),
]
# Demand per day, or per week in hard notes.
RATES = [("{demand} units a day", "{weekly} units per week"), ("{demand} units per day", "{weekly} units a week"),
         ("{demand} units daily", "{weekly} units weekly"), ("{demand} units each day", "{weekly} units every week"),
         ("{demand}/day", "{weekly}/week")]


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    sku, item = rng.choice(for_split(ITEMS, split))
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
             "weekly": demand * 7, "eoq": rng.randint(5, 60) * 50, "peak": demand * rng.randint(2, 4),
             "capacity": rng.randint(20, 90) * 100, "cost": f"{rng.uniform(0.5, 80):.2f}", "pallet": rng.randint(4, 40) * 25}
    if difficulty == "easy":
        index = EASY.index(rng.choice(for_split(EASY, split)))
        note = render(rng, EASY[index], **slots)
    else:
        index = NARRATIONS.index(rng.choice(for_split(NARRATIONS, split)))
        daily, weekly = rng.choice(for_split(RATES, split))
        rate = weekly if difficulty == "hard" else daily
        wait = f"{lead // 7} week{'s' if lead > 7 else ''}" if difficulty == "hard" and lead % 7 == 0 else f"{lead} days"
        first, *rest = NARRATIONS[index]
        sentences = [first, *rng.sample(rest, len(rest))]
        sentences.insert(rng.randint(1, len(sentences)), rng.choice(for_split(DISTRACTORS, split)))
        note = render(rng, " ".join(sentences), rate=rate.format(**slots), wait=wait, **slots)
    relation = "at or below" if decision == "reorder" else "above"
    return {"note": note, "on_hand": on_hand, "daily_demand": float(demand), "lead_time_days": lead, "safety_stock": safety,
            "reorder_point": point, "decision": decision, "family": f"{difficulty}/t{index}",
            "explanation": f"reorder point = {demand}/day * {lead} days + {safety} safety stock = {point:g}; "
                           f"{on_hand} on hand is {relation} it, so {decision}."}


DOMAIN = Domain(
    name="operations",
    program=ReorderDecision,
    metric=label_metric("decision", details=("on_hand", "daily_demand", "lead_time_days", "safety_stock", "reorder_point")),
    data=lambda: generate_splits("operations", make_item, inputs=("note",), n=DEFAULT_ITEMS),
    task="computation",
    description="Inventory control: reorder or hold, from on-hand stock, demand, lead time and safety stock.",
    input_fields=("note",),
    label_fields=("decision",),
)
