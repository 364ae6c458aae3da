"""Specialized (aviation weather): the flight category of a weather report.

A specialist rule applied to two readings: the ceiling (lowest broken, overcast or
vertical-visibility layer) and the visibility. Easy reports state both in plain words;
medium ones give cloud layers in words; hard ones are raw METARs with fractional
visibilities and FEW/SCT layers below the ceiling, which do not count.

The readings are the only cue: a METAR's present-weather group follows from the visibility
(fog only where observers may code it), never from the category, so it says no more than the
visibility group beside it.
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

FlightCategory = Literal["VFR", "MVFR", "IFR", "LIFR"]
CATEGORIES: tuple[FlightCategory, ...] = ("VFR", "MVFR", "IFR", "LIFR")


class ClassifyFlightCategory(dspy.Signature):
    """Give the flight category of a weather report. The ceiling is the lowest broken (BKN),
    overcast (OVC) or vertical visibility (VV) layer; FEW and SCT layers are not ceilings.
    LIFR: ceiling below 500 ft or visibility below 1 mile. IFR: ceiling 500 to below 1,000 ft or
    visibility 1 to below 3 miles. MVFR: ceiling 1,000 to 3,000 ft or visibility 3 to 5 miles.
    VFR: ceiling above 3,000 ft (or none) and visibility above 5 miles. The worse reading decides."""

    context: str = context_field()
    report: str = dspy.InputField(desc="a METAR or a plain-language weather report")
    flight_category: FlightCategory = dspy.OutputField()


class FlightCategoryClassifier(PredictProgram):
    signature = ClassifyFlightCategory


def flight_category(ceiling_ft: int | None, visibility_sm: Fraction) -> str:
    if (ceiling_ft is not None and ceiling_ft < 500) or visibility_sm < 1:
        return "LIFR"
    if (ceiling_ft is not None and ceiling_ft < 1000) or visibility_sm < 3:
        return "IFR"
    if (ceiling_ft is not None and ceiling_ft <= 3000) or visibility_sm <= 5:
        return "MVFR"
    return "VFR"


# Readings that put one factor in each category (ceilings in hundreds of feet; None = no ceiling).
CEILINGS = {"LIFR": [1, 2, 3, 4], "IFR": [5, 6, 7, 8, 9], "MVFR": [10, 12, 15, 20, 25, 30], "VFR": [35, 45, 60, 80, 120, None]}
VISIBILITIES = {"LIFR": ["1/4", "1/2", "3/4"], "IFR": ["1", "1 1/2", "2", "2 1/2"], "MVFR": ["3", "4", "5"],
                "VFR": ["6", "7", "10"]}
STATIONS = ["KJFK", "KORD", "KSEA", "KDEN", "KBOS", "KSFO", "KATL", "KMSP", "EGLL", "CYYZ", "KPDX", "KSLC",
            "KMIA", "KPHX", "KDFW"]
# Present weather by visibility band: observers code fog only below FOG, mist or haze below MIST.
FOG, MIST = Fraction(5, 8), Fraction(7)
WEATHER = {"fog": ["FG", "-SN FG", "FZFG", "+RA FG", "-DZ FG"],
           "mist": ["BR", "HZ", "-RA BR", "-SN BR", "RA BR"],
           "clear": ["", "-RA", "VCSH", "", "-SHRA"]}
WORDS = {"FEW": "a few clouds", "SCT": "scattered clouds", "BKN": "broken clouds", "OVC": "overcast"}

# Plain-language reports: (template, ceiling phrase, phrase for no ceiling).
EASY = [
    ("[Current conditions:|Observation:] {sky}, visibility {miles}.", "ceiling {ft} feet", "no ceiling"),
    ("The airfield is reporting {sky} and {miles} of visibility.", "a cloud ceiling at {ft} feet", "no cloud ceiling"),
    ("Pilots should expect {sky}; horizontal visibility {miles}.", "the lowest broken or overcast base at {ft} ft",
     "no broken or overcast layer"),
    ("Right now you can see {miles}, and {sky}.", "the cloud deck hangs at {ft} feet above the ground",
     "nothing overhead forms a ceiling"),
    ("Ceiling/visibility check — {sky}; {miles} visible.", "base of the ceiling {ft} ft", "ceiling unlimited"),
]
# Cloud layers in words at a named station.
MEDIUM = [
    "[Observation at {station}:|{station} weather:] {sky}; visibility {miles}{haze}.",
    "At {station} the sky shows {sky}, with visibility of {miles}{haze}.",
    "{station} reports {miles} of visibility{haze} beneath {sky}.",
    "Latest from {station} — you can see {miles}{haze}. Cloud cover: {sky}.",
    "Sky condition over {station}: {sky}. Prevailing visibility {miles}{haze}.",
]
HAZE = [" in mist", " in haze", " in light rain and mist", " in smoke", " with drizzle and mist"]
# Raw coded reports: the groups around wind, visibility, weather and sky vary by template.
HARD = [
    "METAR {station} {time} {wind} {vis}SM {wx} {sky} {temps} {altimeter}",
    "SPECI {station} {time} {wind} {vis}SM {wx} {sky} {temps} {altimeter}",
    "METAR {station} {time} AUTO {wind} {vis}SM {wx} {sky} {temps} {altimeter} RMK AO2",
    "{station} {time} {wind} {vis}SM {wx} {sky} {temps} {altimeter} RMK AO2 SLP{slp}",
    "METAR {station} {time} COR {wind} {vis}SM {wx} {sky} {temps} {altimeter} NOSIG",
]


def _draw(rng: random.Random, category: str) -> tuple[int | None, str]:
    """A ceiling and visibility whose worse reading is exactly `category`."""
    better = CATEGORIES[: CATEGORIES.index(category) + 1]  # categories at least as good
    driver = rng.choice(["ceiling", "visibility", "both"]) if category != "VFR" else "both"
    ceiling = rng.choice(CEILINGS[category if driver != "visibility" else rng.choice(better)])
    visibility = rng.choice(VISIBILITIES[category if driver != "ceiling" else rng.choice(better)])
    return ceiling, visibility


def _layers(rng: random.Random, ceiling: int | None, decoys: bool) -> list[tuple[str, int]]:
    """Cloud layers (cover, hundreds of feet), lowest first, whose ceiling is `ceiling`.

    With `decoys`, a FEW/SCT layer sits below the ceiling (or, with no ceiling, low enough
    to look like one).
    """
    layers = [] if ceiling is None else [(rng.choice(["BKN", "OVC"]), ceiling)]
    if layers and layers[0][0] == "BKN" and rng.random() < 0.6:
        layers.append(("OVC", ceiling + rng.choice([5, 10, 20])))  # higher layers never change the ceiling
    top = 50 if ceiling is None else ceiling
    if decoys and top > 1:
        layers.insert(0, (rng.choice(["FEW", "SCT"]), rng.randint(1, top - 1)))
    elif ceiling is None:
        layers.append((rng.choice(["FEW", "SCT"]), rng.randint(35, 80)))
    return layers


def present_weather(rng: random.Random, visibility: Fraction, split: str) -> str:
    """A METAR weather group drawn from the visibility alone, so it adds nothing the visibility does not say."""
    band = "fog" if visibility < FOG else "mist" if visibility < MIST else "clear"
    return rng.choice(for_split(WEATHER[band], split))


def _celsius(degrees: int) -> str:
    """METAR temperature group: two digits, M for minus."""
    return f"M{-degrees:02d}" if degrees < 0 else f"{degrees:02d}"


def _metar(rng: random.Random, split: str, index: int, visibility: str, sky: str, weather: str) -> str:
    temperature = rng.randint(-8, 1) if "SN" in weather else rng.randint(3, 25)
    dewpoint = temperature - rng.randint(0, 6)
    wind = f"{rng.randrange(0, 360, 10):03d}{rng.randint(3, 25):02d}{rng.choice(['', '', 'G32'])}KT"
    return render(rng, HARD[index], station=rng.choice(for_split(STATIONS, split)),
                  time=f"{rng.randint(1, 28):02d}{rng.randint(0, 23):02d}{rng.choice([51, 53, 56]):02d}Z",
                  wind=wind, vis=visibility, wx=weather, sky=sky, temps=f"{_celsius(temperature)}/{_celsius(dewpoint)}",
                  altimeter=f"A{rng.randint(2950, 3050)}", slp=f"{rng.randint(0, 999):03d}")


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    ceiling, visibility = _draw(rng, rng.choice(CATEGORIES))
    feet = None if ceiling is None else ceiling * 100
    distance = sum(Fraction(part) for part in visibility.split())
    category = flight_category(feet, distance)
    miles = f"{visibility} {'mile' if distance <= 1 else 'miles'}"
    pool = {"easy": EASY, "medium": MEDIUM, "hard": HARD}[difficulty]
    index = pool.index(rng.choice(for_split(pool, split)))
    layers: list[tuple[str, int]] = []
    if difficulty == "easy":
        template, with_ceiling, without = EASY[index]
        sky = without if feet is None else with_ceiling.format(ft=f"{feet:,}")
        report = render(rng, template, sky=sky, miles=miles)
    else:
        layers = _layers(rng, ceiling, decoys=difficulty == "hard")
        if difficulty == "medium":
            sky = ", ".join(f"{WORDS[cover]} at {height * 100:,} feet" for cover, height in layers)
            haze = rng.choice(for_split(HAZE, split)) if distance < MIST else ""
            report = render(rng, MEDIUM[index], station=rng.choice(for_split(STATIONS, split)), sky=sky, miles=miles,
                            haze=haze)
        else:
            sky = " ".join(f"{cover}{height:03d}" for cover, height in layers)
            report = _metar(rng, split, index, visibility, sky, present_weather(rng, distance, split))
    ignored = [f"{cover} at {height * 100:,} ft" for cover, height in layers if cover in ("FEW", "SCT")]
    note = f" ({', '.join(ignored)} not a ceiling)" if ignored else ""
    ceiling_text = "no ceiling" if feet is None else f"ceiling {feet:,} ft"
    return {"report": report, "flight_category": category, "family": f"{difficulty}/t{index}",
            "explanation": f"{ceiling_text}{note} and visibility {visibility} SM; the worse of the two gives {category}."}


DOMAIN = Domain(
    name="specialized",
    program=FlightCategoryClassifier,
    metric=label_metric("flight_category"),
    data=lambda: generate_splits("specialized", make_item, inputs=("report",), n=DEFAULT_ITEMS),
    task="classification",
    description="Aviation weather: flight category (VFR / MVFR / IFR / LIFR) from a METAR or plain-language report.",
    input_fields=("report",),
    label_fields=("flight_category",),
)
