"""Real estate: one numeric fact (bedrooms, living area, price, year built, HOA fee) from a listing.

The extraction an agent or appraiser does before any comparison. Easy listings are a
spec line; medium ones are marketing prose; hard ones carry a second number of the same
kind (the old price, garage area, renovation year, a one-off fee, a "den" that is not a
bedroom).

Each split has its own spec layouts, prose styles (decoys included), questions, home styles,
neighbourhoods and features; the five facts serve every split.
"""

from __future__ import annotations

import random

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, money, render, sentence_case
from ax.programs.metrics import numeric_metric
from ax.programs.modules import PredictProgram, context_field

FACTS = ("bedrooms", "square_feet", "asking_price", "year_built", "hoa_fee")
# Five phrasings per fact, dealt to splits: a test question is worded in a way training never saw.
QUESTIONS = {
    "bedrooms": ["How many bedrooms does the home have?", "Number of bedrooms?",
                 "What is the bedroom count of this property?", "How many of the rooms are bedrooms?",
                 "Bedrooms — how many?"],
    "square_feet": ["What is the finished living area in square feet?", "Interior living space (sq ft)?",
                    "How many square feet of living space does the home offer?",
                    "Size of the finished interior, in square feet?", "What is the home's living area (sq ft)?"],
    "asking_price": ["What is the current asking price in dollars?", "List price now (USD)?",
                     "How much is the seller asking today, in dollars?", "What price is the home offered at now (USD)?",
                     "Current price of the listing in dollars?"],
    "year_built": ["In what year was the home built?", "Year of construction?",
                   "When was the house originally built (year)?", "What year was the home first completed?",
                   "Original build year?"],
    "hoa_fee": ["What is the monthly HOA fee in dollars (0 if there is none)?", "Monthly HOA dues (USD, 0 if no HOA)?",
                "How much are the monthly association dues, in dollars (0 if none)?",
                "What does the HOA charge per month (USD; 0 when there is no HOA)?",
                "Monthly homeowners-association fee in dollars, or 0 if none?"],
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
          "modern farmhouse", "cape cod", "loft apartment", "brick duplex", "Tudor revival", "A-frame cabin",
          "garden-level flat", "Spanish-style stucco home"]
AREAS = ["Maple Heights", "the Riverside district", "Old Town", "Cedar Park", "Lakeview", "the Arts Quarter",
         "North Hills", "Brookfield", "Harbor Point", "Willow Creek", "Fox Hollow", "the Mill District", "Sunset Ridge",
         "Elmwood", "Bayside"]
FEATURES = ["updated kitchen with quartz counters", "hardwood floors throughout", "a fenced backyard",
            "a two-car garage", "new roof in 2021", "walk-in closets", "a finished basement", "a sunny deck",
            "a wood-burning fireplace", "a screened porch", "vaulted ceilings", "a chef's pantry", "a heated sunroom",
            "mature fruit trees", "built-in bookshelves"]
# Spec lines: (layout, HOA text when there is none, HOA text with a fee).
EASY = [
    ("{bedrooms} bd | {baths} ba | {sqft} sqft | {price} | Built {year_built} | {hoa}", "No HOA", "HOA ${hoa_fee}/mo"),
    ("Beds: {bedrooms}\nBaths: {baths}\nLiving area: {sqft} sq ft\nPrice: {price}\nYear built: {year_built}\nHOA: {hoa}",
     "none", "${hoa_fee} per month"),
    ("{bedrooms} BR / {baths} BA, {sqft} sq. ft., list {price}, built {year_built}, {hoa}", "no HOA",
     "HOA ${hoa_fee} monthly"),
    ("{price} — {bed_text}, {bath_text}, {sqft} square feet, constructed {year_built}; {hoa}.",
     "no association dues", "association dues ${hoa_fee} a month"),
    ("Specs: {sqft} sf living · beds {bedrooms} · baths {baths} · yr built {year_built} · asking {price} · {hoa}",
     "HOA n/a", "HOA ${hoa_fee}/month"),
]
# Prose styles. Medium listings use the plain sentences; hard ones swap the asked fact's sentence for its decoy,
# a sentence holding a second number of the same kind, described by the decoy's second element.
PROSE = [
    {"opener": "[Charming|Bright|Spacious|Well-kept] {style} in {area}.",
     "hard_opener": "[Welcome to this|Don't miss this|Move-in ready] {style} in {area}.",
     "bedrooms": "[Offers|Features|Boasts] {bed_text} and {bath_text}.",
     "square_feet": "{sqft} square feet of living space.",
     "year_built": "[Built in|Constructed in|Dating from] {year_built}, with {feature}.",
     "asking_price": "[Listed at|Offered at|Asking] {price}.",
     "hoa_fee": "HOA dues are ${hoa_fee} per month.", "no_hoa": "No HOA.",
     "comparable": "A similar home nearby sold for {comparable}.",
     "decoys": {
         "bedrooms": ("{bed_text} plus a den that could serve as another bedroom, and {bath_text}.", "the den"),
         "square_feet": ("{sqft} sq ft of finished living space plus a {garage} sq ft garage.", "the {garage} sq ft garage"),
         "year_built": ("Built in {year_built} and fully renovated in {renovated}.", "the renovation year {renovated}"),
         "asking_price": ("Price reduced from {old_price} to {price}!", "the old price {old_price}"),
         "hoa_fee": ("HOA dues are ${hoa_fee} per month. One-time transfer fee: ${transfer}.", "the one-off ${transfer}"),
         "no_hoa": ("No HOA; a special city assessment of ${transfer} was paid in full.", "the one-off ${transfer}")}},
    {"opener": "Tucked into {area}, this {style} is ready for its next owner.",
     "hard_opener": "Just listed in {area}: a {style} with character.",
     "bedrooms": "Sleeping quarters include {bed_text}, served by {bath_text}.",
     "square_feet": "Interior space totals {sqft} sq ft.",
     "year_built": "The home dates to {year_built} and comes with {feature}.",
     "asking_price": "The sellers are asking {price}.",
     "hoa_fee": "Association fee: ${hoa_fee} monthly.", "no_hoa": "There is no homeowners association.",
     "comparable": "The house next door went for {comparable} last spring.",
     "decoys": {
         "bedrooms": ("Sleeping quarters include {bed_text}, served by {bath_text}; the office off the hall "
                      "is not counted as one.", "the office"),
         "square_feet": ("Interior space totals {sqft} sq ft; the detached workshop adds another {garage} sq ft.",
                         "the {garage} sq ft workshop"),
         "year_built": ("The home dates to {year_built}; a rear addition went up in {renovated}.",
                        "the addition year {renovated}"),
         "asking_price": ("Originally listed at {old_price}, the sellers now ask {price}.", "the original {old_price}"),
         "hoa_fee": ("Association fee: ${hoa_fee} monthly, plus a ${transfer} move-in fee.", "the ${transfer} move-in fee"),
         "no_hoa": ("There is no homeowners association, though buyers pay a ${transfer} inspection deposit once.",
                    "the one-off ${transfer} deposit")}},
    {"opener": "Presenting a {style} in {area}.",
     "hard_opener": "Buyers, take note: {style}, {area}.",
     "bedrooms": "The layout has {bed_text} with {bath_text}.",
     "square_feet": "Finished area: {sqft} square feet.",
     "year_built": "Year of construction {year_built}; highlights include {feature}.",
     "asking_price": "Price: {price}.",
     "hoa_fee": "Monthly HOA: ${hoa_fee}.", "no_hoa": "HOA: none.",
     "comparable": "Comparable sale on the same street: {comparable}.",
     "decoys": {
         "bedrooms": ("The layout has {bed_text} with {bath_text}, plus a bonus room without a closet that "
                      "is not a bedroom.", "the bonus room"),
         "square_feet": ("Finished area: {sqft} square feet, not counting the {garage} sq ft unfinished basement.",
                         "the {garage} sq ft basement"),
         "year_built": ("Year of construction {year_built}; kitchen and baths redone in {renovated}.",
                        "the remodel year {renovated}"),
         "asking_price": ("Now {price} (was {old_price}).", "the earlier {old_price}"),
         "hoa_fee": ("Monthly HOA: ${hoa_fee}; a one-time ${transfer} capital contribution is due at closing.",
                     "the one-time ${transfer}"),
         "no_hoa": ("HOA: none. A one-time septic inspection fee of ${transfer} is due at closing.",
                    "the one-time ${transfer}")}},
    {"opener": "Picture yourself in this {style} in {area}.",
     "hard_opener": "Opportunity knocks in {area} — a {style}.",
     "bedrooms": "Upstairs you'll find {bed_text}; the bath count is {baths}.",
     "square_feet": "All told the living space measures {sqft} square feet.",
     "year_built": "Originally completed in {year_built}, it features {feature}.",
     "asking_price": "Yours for {price}.",
     "hoa_fee": "Owners pay ${hoa_fee} a month to the HOA.", "no_hoa": "No association dues apply.",
     "comparable": "A neighbour's similar house closed at {comparable}.",
     "decoys": {
         "bedrooms": ("Upstairs you'll find {bed_text} and a nursery too small to count as one; the bath "
                      "count is {baths}.", "the nursery"),
         "square_feet": ("All told the living space measures {sqft} square feet, and the covered patio adds {garage} "
                         "sq ft outdoors.", "the {garage} sq ft patio"),
         "year_built": ("Originally completed in {year_built}, it was carefully restored in {renovated}.",
                        "the restoration year {renovated}"),
         "asking_price": ("Yours for {price}, down from {old_price} last month.", "last month's {old_price}"),
         "hoa_fee": ("Owners pay ${hoa_fee} a month to the HOA, after a one-off ${transfer} joining fee.",
                     "the one-off ${transfer}"),
         "no_hoa": ("No association dues apply; the seller covered a one-time ${transfer} sewer hookup charge.",
                    "the one-time ${transfer}")}},
    {"opener": "{style_cap} for sale in {area}.",
     "hard_opener": "New to market: {style} located in {area}.",
     "bedrooms": "Bedrooms: {bedrooms}; bathrooms: {baths}.",
     "square_feet": "It offers {sqft} sq ft of finished living space.",
     "year_built": "Erected in {year_built} and equipped with {feature}.",
     "asking_price": "Seller's price is {price}.",
     "hoa_fee": "A ${hoa_fee}/month HOA covers common areas.", "no_hoa": "Not part of an HOA.",
     "comparable": "An equivalent property around the corner sold at {comparable}.",
     "decoys": {
         "bedrooms": ("Bedrooms: {bedrooms} (the loft upstairs is a flex space, not a bedroom); bathrooms: {baths}.",
                      "the loft"),
         "square_feet": ("It offers {sqft} sq ft of finished living space and a {garage} sq ft carport.",
                         "the {garage} sq ft carport"),
         "year_built": ("Erected in {year_built}; the roof and windows were replaced in {renovated}.",
                        "the replacement year {renovated}"),
         "asking_price": ("Seller's price is {price} after a cut from {old_price}.", "the pre-cut {old_price}"),
         "hoa_fee": ("A ${hoa_fee}/month HOA covers common areas; new owners also pay a ${transfer} initiation fee.",
                     "the ${transfer} initiation fee"),
         "no_hoa": ("Not part of an HOA; a one-time ${transfer} road-paving levy was settled last year.",
                    "the one-time ${transfer} levy")}},
]


def _listing_facts(rng: random.Random) -> dict[str, int]:
    return {"bedrooms": rng.randint(1, 6), "baths": rng.choice([1, 2, 2, 3]), "square_feet": rng.randint(60, 450) * 10,
            "asking_price": rng.randint(150, 1500) * 1000, "year_built": rng.randint(1900, 2022),
            "hoa_fee": rng.choice([0, rng.randint(5, 80) * 10])}


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    fact = rng.choice(FACTS)
    f = _listing_facts(rng)
    style = rng.choice(for_split(STYLES, split))
    slots = {"style": style, "style_cap": sentence_case(style), "area": rng.choice(for_split(AREAS, split)),
             "feature": rng.choice(for_split(FEATURES, split)), "price": money(f["asking_price"]),
             "sqft": f"{f['square_feet']:,}",
             "bed_text": _count(f["bedrooms"], "bedroom"), "bath_text": _count(f["baths"], "bath"), **f}
    why = f"the listing gives {fact.replace('_', ' ')} as {f[fact]}."
    pool = EASY if difficulty == "easy" else PROSE
    index = pool.index(rng.choice(for_split(pool, split)))
    if difficulty == "easy":
        layout, no_hoa, hoa = EASY[index]
        listing = render(rng, layout, hoa=(hoa if f["hoa_fee"] else no_hoa).format(**slots), **slots)
    else:
        listing, decoy = _prose_listing(rng, PROSE[index], fact, f, slots, decoy=difficulty == "hard")
        if decoy:
            why += f" Not {decoy}: that is a different figure."
    return {"listing": listing, "question": rng.choice(for_split(QUESTIONS[fact], split)), "value": f[fact],
            "fact": fact, "family": f"{fact}/{difficulty}/t{index}", "explanation": why}


def _prose_listing(rng: random.Random, prose: dict, fact: str, f: dict[str, int], slots: dict,
                   decoy: bool) -> tuple[str, str]:
    """A prose listing in one style and what its decoy is; with `decoy`, the asked fact's sentence also holds a
    same-kind number and a comparable sale may follow."""
    hoa = "hoa_fee" if f["hoa_fee"] else "no_hoa"
    keys = ["bedrooms", "square_feet", "year_built", "asking_price", hoa]
    slots = {**slots, "old_price": money(f["asking_price"] + rng.randint(1, 8) * 5000),
             "garage": rng.randint(20, 60) * 10, "transfer": rng.randint(2, 9) * 100,
             "renovated": min(2024, f["year_built"] + rng.randint(5, 60)),
             "comparable": money(f["asking_price"] + rng.choice([-1, 1]) * rng.randint(2, 30) * 1000)}
    body = {key: prose[key] for key in keys}
    described = ""
    if decoy:
        asked = hoa if fact == "hoa_fee" else fact
        body[asked], described = prose["decoys"][asked]
        if rng.random() < 0.5:
            body["comparable"] = prose["comparable"]
    sentences = list(body.values())
    rng.shuffle(sentences)
    opening = prose["hard_opener" if decoy else "opener"]
    return render(rng, " ".join([opening, *sentences]), **slots), described.format(**slots)


DOMAIN = Domain(
    name="real_estate",
    program=ListingFactExtractor,
    metric=numeric_metric("value"),
    data=lambda: generate_splits("real_estate", make_item, inputs=("listing", "question"), n=DEFAULT_ITEMS),
    task="extraction",
    description="Property listings: extract bedrooms, living area, asking price, year built or monthly HOA fee.",
    input_fields=("listing", "question"),
    label_fields=("value",),
)
