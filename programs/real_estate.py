"""Real estate: one numeric fact (bedrooms, living area, price, year built, HOA fee) from a listing.

The extraction an agent or appraiser does before any comparison. Easy listings are a
spec line; medium ones are marketing prose; hard ones carry a second number of the same
kind (the old price, garage area, renovation year, a one-off fee, a "den" that is not a
bedroom).
"""

from __future__ import annotations

import random

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, money, render
from ax.programs.metrics import numeric_metric
from ax.programs.modules import PredictProgram, context_field

FACTS = ("bedrooms", "square_feet", "asking_price", "year_built", "hoa_fee")
QUESTIONS = {
    "bedrooms": ["How many bedrooms does the home have?", "Number of bedrooms?"],
    "square_feet": ["What is the finished living area in square feet?", "Interior living space (sq ft)?"],
    "asking_price": ["What is the current asking price in dollars?", "List price now (USD)?"],
    "year_built": ["In what year was the home built?", "Year of construction?"],
    "hoa_fee": ["What is the monthly HOA fee in dollars (0 if there is none)?", "Monthly HOA dues (USD, 0 if no HOA)?"],
}


class ExtractListingFact(dspy.Signature):
    """Answer the question about a property listing with a single whole number taken from it."""

    context: str = context_field()
    listing: str = dspy.InputField()
    question: str = dspy.InputField()
    value: int = dspy.OutputField(desc="digits only, no $ or commas")


class ListingFactExtractor(PredictProgram):
    signature = ExtractListingFact


STYLES = ["craftsman bungalow", "mid-century ranch", "colonial", "townhouse", "condo", "Victorian", "split-level",
          "modern farmhouse", "cape cod", "loft apartment"]
AREAS = ["Maple Heights", "the Riverside district", "Old Town", "Cedar Park", "Lakeview", "the Arts Quarter",
         "North Hills", "Brookfield", "Harbor Point", "Willow Creek"]
FEATURES = ["updated kitchen with quartz counters", "hardwood floors throughout", "a fenced backyard",
            "a two-car garage", "new roof in 2021", "walk-in closets", "a finished basement", "a sunny deck"]


def _listing_facts(rng: random.Random) -> dict[str, int]:
    return {"bedrooms": rng.randint(1, 6), "baths": rng.choice([1, 2, 2, 3]), "square_feet": rng.randint(60, 450) * 10,
            "asking_price": rng.randint(150, 1500) * 1000, "year_built": rng.randint(1900, 2022),
            "hoa_fee": rng.choice([0, rng.randint(5, 80) * 10])}


def _hoa_text(fee: int) -> str:
    return "No HOA." if fee == 0 else f"HOA dues are ${fee} per month."


def make_item(rng: random.Random, difficulty: str) -> dict:
    fact = rng.choice(FACTS)
    f = _listing_facts(rng)
    slots = {"style": rng.choice(STYLES), "area": rng.choice(AREAS), "feature": rng.choice(FEATURES),
             "price": money(f["asking_price"]), "sqft": f"{f['square_feet']:,}", "hoa": _hoa_text(f["hoa_fee"]),
             "bath_text": f"{f['baths']} bath{'s' if f['baths'] > 1 else ''}", **f}
    why = f"the listing gives {fact.replace('_', ' ')} as {f[fact]}."
    if difficulty == "easy":
        hoa = "No HOA" if f["hoa_fee"] == 0 else f"HOA ${f['hoa_fee']}/mo"
        listing = render(rng, "{bedrooms} bd | {baths} ba | {sqft} sqft | {price} | Built {year_built} | {hoa_short}",
                         hoa_short=hoa, **slots)
    elif difficulty == "medium":
        sentences = [render(rng, "[Charming|Bright|Spacious|Well-kept] {style} in {area}.", **slots),
                     render(rng, "[Offers|Features|Boasts] {bedrooms} bedrooms and {bath_text} across {sqft} square feet.", **slots),
                     render(rng, "[Built in|Constructed in|Dating from] {year_built}, with {feature}.", **slots),
                     render(rng, "[Listed at|Offered at|Asking] {price}.", **slots), slots["hoa"]]
        listing = " ".join([sentences[0], *rng.sample(sentences[1:], len(sentences) - 1)])
    else:
        listing, decoy = _hard_listing(rng, fact, f, slots)
        why += f" Not {decoy}: that is a different figure."
    return {"listing": listing, "question": rng.choice(QUESTIONS[fact]), "value": f[fact], "fact": fact,
            "explanation": why}


def _hard_listing(rng: random.Random, fact: str, f: dict[str, int], slots: dict) -> tuple[str, str]:
    """A prose listing whose sentence about the asked fact also holds a same-kind decoy."""
    old_price = f["asking_price"] + rng.randint(1, 8) * 5000
    garage, transfer = rng.randint(20, 60) * 10, rng.randint(2, 9) * 100
    renovated = min(2024, f["year_built"] + rng.randint(5, 60))
    comparable = f["asking_price"] + rng.choice([-1, 1]) * rng.randint(2, 30) * 1000
    sentences = {
        "bedrooms": f"{f['bedrooms']} bedrooms and {slots['bath_text']}.",
        "square_feet": f"{slots['sqft']} sq ft.",
        "year_built": f"Built in {f['year_built']}.",
        "asking_price": f"Asking {slots['price']}.",
        "hoa_fee": slots["hoa"],
    }
    decoys = {
        "bedrooms": (f"{f['bedrooms']} bedrooms plus a den that could serve as another bedroom, and {slots['bath_text']}.",
                     "the den"),
        "square_feet": (f"{slots['sqft']} sq ft of finished living space plus a {garage} sq ft garage.",
                        f"the {garage} sq ft garage"),
        "year_built": (f"Built in {f['year_built']} and fully renovated in {renovated}.", f"the renovation year {renovated}"),
        "asking_price": (f"Price reduced from {money(old_price)} to {slots['price']}!", f"the old price {money(old_price)}"),
        "hoa_fee": (f"{slots['hoa']} One-time transfer fee: ${transfer}." if f["hoa_fee"] else
                    f"No HOA; a special city assessment of ${transfer} was paid in full.", f"the one-off ${transfer}"),
    }
    sentences[fact], decoy = decoys[fact]
    body = list(sentences.values())
    if rng.random() < 0.5:
        body.append(f"A similar home nearby sold for {money(comparable)}.")
    rng.shuffle(body)
    opening = render(rng, "[Welcome to this|Don't miss this|Move-in ready] {style} in {area}.", **slots)
    return " ".join([opening, *body]), decoy


DOMAIN = Domain(
    name="real_estate",
    program=ListingFactExtractor,
    metric=numeric_metric("value"),
    data=lambda: generate_examples("real_estate", make_item, inputs=("listing", "question"), n=DEFAULT_ITEMS),
    task="extraction",
    description="Property listings: extract bedrooms, living area, asking price, year built or monthly HOA fee.",
    input_fields=("listing", "question"),
    label_fields=("value",),
)
