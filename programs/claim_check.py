"""Claim check: pick out the factual claim in a short paragraph, retrieve the evidence, judge the claim.

Three steps: the `extract` predictor points at the one checkable claim (a number or date about a
named company, town or product) among personal remarks, by its sentence number, and the program
copies that sentence out; retrieval (BM25 on the claim, no LM)
finds the evidence passage; the `verdict` predictor judges the claim against it and cites it.
The evidence is about fictional entities that mention one another (a company names its town, a
product its maker's brand), so retrieval needs what a claim says about its subject, not just a name.

A supported claim repeats a fact of its passage; a refuted one changes the fact's number; a claim
with not enough info states a fact the passage about its subject does not give. Easy paragraphs
have one remark beside the claim and refuted numbers far off; hard ones three remarks, numbers a
year or a few percent off, and unsupported claims that reuse a number the passage gives for another
fact. Each split has its own claim phrasings and remarks (`for_split`). Examples carry the gold
passage under `evidence`, the name the `verdict` predictor reads it by, for label-based training.
"""

from __future__ import annotations

import random
import re
from typing import Literal, NamedTuple

import dspy

from ax.context.retrieval import Document
from ax.programs.domain import Domain
from ax.programs.generation import for_split, generate_splits, sentence_case
from ax.programs.metrics import Step, label_metric, mean_metric, step_metric
from ax.programs.modules import context_field
from ax.programs.passages import PassageIndex, cite, retrieval_metric

Verdict = Literal["supported", "refuted", "not_enough_info"]
VERDICTS: tuple[Verdict, ...] = ("supported", "refuted", "not_enough_info")
ITEMS = 240  # 144 train / 48 dev / 48 test

# (name, what it makes, town, founded, employees)
COMPANIES = [
    ("Harlow Mills", "paper", "Penrick", 1987, 340), ("Brightwater Foods", "snacks", "Dunvale", 2004, 1150),
    ("Kestrel Robotics", "warehouse robots", "Alderby", 2012, 85), ("Orla Textiles", "fabric", "Carrowby", 1962, 610),
    ("Tamsin Bikes", "bicycles", "Ellsmere", 1998, 220),
    ("Quillon Software", "accounting software", "Graythorn", 2009, 470),
    ("Vantor Labs", "medicines", "Myrtlebank", 1979, 1380), ("Redfern Glassworks", "glassware", "Sorrelton", 1921, 96),
]
# (name, what kind of town, population, year of its charter)
TOWNS = [
    ("Penrick", "river", 12400, 1702), ("Dunvale", "hill", 8350, 1815), ("Alderby", "market", 23900, 1654),
    ("Carrowby", "mill", 5120, 1788), ("Ellsmere", "lake", 17600, 1731), ("Graythorn", "harbour", 31200, 1599),
    ("Myrtlebank", "valley", 9870, 1862), ("Sorrelton", "coastal", 4460, 1743),
]
# (name, kind, maker, launch year, price in dollars)
PRODUCTS = [
    ("Scribe", "notebook", "Harlow Mills", 2016, 14), ("Crunchlets", "crackers", "Brightwater Foods", 2011, 3),
    ("Picker", "robot arm", "Kestrel Robotics", 2019, 48000), ("Softloom", "blanket", "Orla Textiles", 2020, 89),
    ("Nimbus", "e-bike", "Tamsin Bikes", 2021, 1899), ("Ledgerly", "app", "Quillon Software", 2014, 29),
    ("Calmix", "cough syrup", "Vantor Labs", 2007, 9), ("Aurora", "vase", "Redfern Glassworks", 2018, 120),
]


class Entity(NamedTuple):
    """One evidence passage: its subject and the facts its text states."""

    evidence_id: str
    kind: Literal["company", "town", "product"]
    subject: str  # as a claim names it: "Harlow Mills", "the Scribe notebook"
    facts: dict[str, int]  # attribute -> value
    text: str


def _entities() -> list[Entity]:
    rows = [("company", name, {"founded": founded, "employees": employees},
             f"{name} is a company that makes {what}; its head office is at {town}. "
             f"The company was founded in {founded} and employs {employees:,} people.")
            for name, what, town, founded, employees in COMPANIES]
    rows += [("town", name, {"population": population, "chartered": chartered},
              f"The town of {name} is a {feature} town, home to a population of {population:,} people living there. "
              f"The town received its charter in {chartered}.")
             for name, feature, population, chartered in TOWNS]
    rows += [("product", f"the {name} {kind}", {"launched": launched, "price": price},
              f"The {name} {kind} is a product of the {maker.split()[0]} brand. "
              f"It went on sale in {launched} and costs ${price:,}.")
             for name, kind, maker, launched, price in PRODUCTS]
    return [Entity(f"EV-{number:02d}", *row) for number, row in enumerate(rows, 1)]


ENTITIES = _entities()
EVIDENCE = [Document(id=entity.evidence_id, text=entity.text) for entity in ENTITIES]
EVIDENCE_INDEX = PassageIndex(EVIDENCE)
EvidenceId = Literal[tuple(EVIDENCE_INDEX.ids())]


class ExtractClaim(dspy.Signature):
    """Find the one factual claim in the text: the sentence that states a number or a date about a
    named company, town or product, not a personal remark or opinion. Give its number."""

    context: str = context_field()
    text: str = dspy.InputField(desc="a short paragraph of numbered sentences: (1) ... (2) ...")
    claim_sentence: int = dspy.OutputField(desc="the number of the claim's sentence")


class JudgeClaim(dspy.Signature):
    """Check the claim against the evidence passage. supported: the passage gives the same number or date
    for that fact; refuted: it gives a different one; not_enough_info: it does not state that fact at all.
    evidence_id: the id at the start of the passage."""

    context: str = context_field()
    claim: str = dspy.InputField()
    evidence: str = dspy.InputField(desc="the evidence passage, starting with its id")
    verdict: Verdict = dspy.OutputField()
    evidence_id: EvidenceId = dspy.OutputField()


class ClaimChecker(dspy.Module):
    """extract the claim -> retrieve evidence (BM25 on the claim) -> verdict with the evidence's id."""

    def __init__(self) -> None:
        super().__init__()
        self.extract = dspy.Predict(ExtractClaim)
        self.verdict = dspy.Predict(JudgeClaim)

    def forward(self, text: str, context: str = "") -> dspy.Prediction:
        # The model points at the sentence and Python copies it: a 135M model copies free text poorly.
        number = self.extract(context=context, text=text).claim_sentence
        claim = sentence(text, number)
        evidence = EVIDENCE_INDEX.top(claim)
        judged = self.verdict(context=context, claim=claim, evidence=cite(evidence))
        return dspy.Prediction(claim_sentence=number, claim=claim, retrieved_id=evidence.id, verdict=judged.verdict,
                               evidence_id=judged.evidence_id)


def numbered(sentences: list[str]) -> str:
    return " ".join(f"({n}) {text}" for n, text in enumerate(sentences, 1))


def sentence(text: str, number: object) -> str:
    """Sentence `number` of a `numbered` text ("" when there is none)."""
    parts = dict(re.findall(r"\((\d+)\) (.*?)(?= \(\d+\) |$)", text))
    return parts.get(str(number), "")


class Attribute(NamedTuple):
    label: str  # how the explanation names the fact
    show: str  # how a value is written, e.g. "${:,}"
    phrasings: tuple[str, ...]  # claims stating the fact: {subject}, {Subject}, {value}


ATTRIBUTES: dict[str, Attribute] = {
    "founded": Attribute("founding year", "{}", (
        "{Subject} was founded in {value}.", "{Subject} has existed since {value}.",
        "{Subject} first opened its doors in {value}.", "{Subject} dates back to {value}.",
        "The company {subject} started out in {value}.")),
    "employees": Attribute("number of employees", "{:,}", (
        "{Subject} employs {value} people.", "{Subject} has {value} employees.", "{Subject} has a staff of {value}.",
        "There are {value} people working at {subject}.", "{Subject} gives jobs to {value} people.")),
    "population": Attribute("population", "{:,}", (
        "{Subject} has a population of {value}.", "{Subject} is home to {value} people.",
        "There are {value} people living in {subject}.", "The population of {subject} is {value}.",
        "The town of {subject} has {value} residents.")),
    "chartered": Attribute("charter year", "{}", (
        "{Subject} received its town charter in {value}.", "{Subject} became a chartered town in {value}.",
        "{Subject} was granted its town charter in {value}.", "The charter of {subject} dates from {value}.",
        "{Subject} got its town charter in {value}.")),
    "launched": Attribute("launch year", "{}", (
        "{Subject} went on sale in {value}.", "{Subject} was launched in {value}.",
        "{Subject} first hit the shops in {value}.", "{Subject} came out in {value}.",
        "{Subject} has been on sale since {value}.")),
    "price": Attribute("price", "${:,}", (
        "{Subject} costs {value}.", "{Subject} sells for {value}.", "{Subject} is priced at {value}.",
        "You can buy {subject} for {value}.", "{Subject} has a price of {value}.")),
}
# Facts no passage states, per kind: (claim, what the explanation says is missing, the kind of number).
UNSTATED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "company": (("The company {subject} opened a second office in {value}.", "a second office", "year"),
                ("The company {subject} had {value} customers last year.", "its customers", "count"),
                ("{Subject} was bought by a rival company in {value}.", "a sale of the company", "year"),
                ("{Subject} runs {value} factories.", "its factories", "count"),
                ("The company {subject} moved to new offices in {value}.", "a move", "year")),
    "town": (("The town of {subject} has {value} bridges.", "its bridges", "count"),
             ("The town of {subject} elected its first mayor in {value}.", "its first mayor", "year"),
             ("{Subject} has {value} primary schools in town.", "its schools", "count"),
             ("The town of {subject} opened its railway station in {value}.", "a railway station", "year"),
             ("The town of {subject} lies {value} metres above sea level.", "its height above sea level", "count")),
    "product": (("{Subject} weighs {value} grams.", "its weight", "count"),
                ("{Subject} won a design award in {value}.", "an award", "year"),
                ("{Subject} sold {value} units in its first year.", "its sales", "count"),
                ("{Subject} was redesigned in {value}.", "a redesign", "year"),
                ("{Subject} comes in {value} colours.", "its colours", "count")),
}
YEAR_FACTS = {"founded", "chartered", "launched"}
REMARKS = [
    "I read this on the train this morning.", "My aunt mentioned it over dinner.",
    "Honestly, I had never thought about it before.", "It was shared in our group chat.",
    "A few of my friends were surprised.", "We were talking about it at lunch.", "I am not sure what to make of it.",
    "The weather was grey all weekend.", "Someone pinned it on the community board.",
    "I heard it on a podcast last week.", "My neighbour swears it is true.", "It came up during a quiz night.",
    "I wrote it down so I would not forget it.", "Let me know what you think.", "Anyway, back to work now.",
    "It made for a fun conversation.", "I spotted it in a newsletter.", "Could you check this for me?",
    "My brother brought it up yesterday.", "I found that quite interesting.",
]


def _show(attribute: str, value: int) -> str:
    return ATTRIBUTES[attribute].show.format(value)


def _changed(rng: random.Random, attribute: str, true: int, hard: bool) -> int:
    """A wrong value for a fact: a year or a few percent off when hard, far off otherwise."""
    sign = rng.choice((-1, 1))
    if attribute in YEAR_FACTS:
        delta = rng.randint(1, 2) if hard else rng.randint(4, 15)
        return true - delta if sign < 0 or true + delta > 2024 else true + delta
    share = rng.uniform(0.04, 0.12) if hard else rng.uniform(0.3, 0.6)
    value = max(1, round(true * (1 + sign * share)))
    return value if value != true else true + 1


def _unstated_value(rng: random.Random, entity: Entity, number: str, hard: bool) -> int:
    """A number for an unstated fact; when hard, one the passage gives for another fact, if one fits."""
    stated = [value for attribute, value in entity.facts.items() if (attribute in YEAR_FACTS) == (number == "year")]
    if hard and stated:
        return rng.choice(stated)
    return rng.randint(1950, 2023) if number == "year" else rng.choice((rng.randint(2, 12), rng.randint(40, 900)))


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    entity = rng.choice(ENTITIES)
    verdict = rng.choice(VERDICTS)
    hard = difficulty == "hard"
    slots = {"subject": entity.subject, "Subject": sentence_case(entity.subject)}
    if verdict == "not_enough_info":
        pool = UNSTATED[entity.kind]
        template, missing, number = rng.choice(for_split(pool, split))
        value = _unstated_value(rng, entity, number, hard)
        claim = template.format(value=f"{value:,}" if number == "count" else value, **slots)
        why = f"{entity.evidence_id} is about {entity.subject} but says nothing about {missing}"
        family = f"{entity.kind}/unstated/c{pool.index((template, missing, number))}"
    else:
        attribute = rng.choice(list(entity.facts))
        spec, true = ATTRIBUTES[attribute], entity.facts[attribute]
        value = true if verdict == "supported" else _changed(rng, attribute, true, hard)
        template = rng.choice(for_split(spec.phrasings, split))
        claim = template.format(value=_show(attribute, value), **slots)
        why = (f"{entity.evidence_id} gives the {spec.label} of {entity.subject} as {_show(attribute, true)}; "
               f"the claim says {_show(attribute, value)}")
        family = f"{attribute}/{verdict}/c{spec.phrasings.index(template)}"
    remarks = rng.sample(for_split(REMARKS, split), {"easy": 1, "medium": 2, "hard": 3}[difficulty])
    position = {"easy": rng.randint(0, 1), "medium": 1, "hard": rng.randint(1, 2)}[difficulty]
    sentences = [*remarks[:position], claim, *remarks[position:]]
    return {
        "text": numbered(sentences), "claim_sentence": position + 1, "claim": claim, "verdict": verdict,
        "evidence_id": entity.evidence_id,
        "evidence": cite(EVIDENCE[ENTITIES.index(entity)]), "explanation": f"{why}: {verdict}.", "family": family,
    }


METRIC = step_metric(
    Step("extract", label_metric("claim_sentence"), ("extract",)),
    Step("retrieve", retrieval_metric("evidence_id"), ("extract",)),
    Step("verdict", mean_metric(label_metric("verdict"), label_metric("evidence_id")), ("verdict",)),
)

DOMAIN = Domain(
    name="claim_check",
    program=ClaimChecker,
    metric=METRIC,
    data=lambda: generate_splits("claim_check", make_item, inputs=("text",), n=ITEMS),
    task="classification",
    description="Claim check: extract the claim, retrieve evidence, judge supported / refuted / not enough info.",
    input_fields=("text",),
    label_fields=("verdict", "claim_sentence", "evidence_id"),
)
