"""Generated datasets shaped like the public ones users bring, for tests and benches.

Real datasets are not shipped with ax, so tests and benches use files of the same shape: label
set and class balance, number of input fields, input length. The text is templated, so a model can
learn the cue words, but the shapes are what matter: a 60%-majority label set breaks a LoRA step
that learns the prior, a ~250-token passage makes answering and training slow, dozens of labels
stress constrained decoding and label balancing.

    rows = sentences(600, seed=0)        # text -> positive / neutral / negative, 60% neutral
    rows = passage_qa(300, seed=0)       # question + passage (~250 tokens) -> yes / no / maybe
    rows = intents(3080, labels=77)      # query -> one of 77 intents, unbalanced
    write_jsonl(rows, "sentences.jsonl") # then: ax data import sentences.jsonl --input text --label label
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from ax.model import atomic_write_text

# Shares of the public sets they mimic: a financial-news sentence set, a biomedical yes/no/maybe QA set.
SENTENCE_SHARES = {"neutral": 0.60, "positive": 0.28, "negative": 0.12}
QA_SHARES = {"yes": 0.55, "no": 0.34, "maybe": 0.11}

_COMPANIES = ["Aspo", "Componenta", "Nokian Tyres", "Raisio", "Ruukki", "Stockmann", "Tecnomen", "Vaisala",
              "Okmetic", "Elcoteq", "Finnair", "Kone", "Metso", "Orion", "Wartsila", "YIT"]
_CITIES = ["Helsinki", "Tampere", "Oulu", "Stockholm", "Tallinn", "Riga", "Gdansk", "Espoo", "Turku", "Vaasa"]
_ITEMS = ["net sales", "operating profit", "order intake", "pre-tax profit", "gross margin", "earnings per share"]
_PERIODS = ["the first quarter", "the second quarter", "the third quarter", "2007", "2008", "January-June"]
_SENTENCE_TEMPLATES = {
    "positive": ["{company}'s {item} rose {pct}% to EUR {amount} million in {period}.",
                 "In {period}, {item} increased by {pct}% from a year earlier, {company} said.",
                 "{company} won an order worth EUR {amount} million to supply equipment to {city}.",
                 "{company} expects its {item} to grow clearly in {period} compared with last year.",
                 "The {item} of {company} improved to EUR {amount} million, beating analysts' expectations."],
    "negative": ["{company}'s {item} fell {pct}% to EUR {amount} million in {period}.",
                 "{company} will cut {count} jobs at its plant in {city} as demand weakens.",
                 "In {period}, {item} decreased by {pct}% and the company issued a profit warning.",
                 "The {item} of {company} dropped to EUR {amount} million, below analysts' expectations."],
    "neutral": ["{company} operates {count} stores in {city} and employs about {count2} people.",
                "{company} will publish its interim report for {period} on {day}.",
                "The agreement covers the delivery of equipment from {company} to its customer in {city}.",
                "{company} is headquartered in {city} and its shares are listed on the main market.",
                "The {item} figures for {period} are given in the table below, {company} said.",
                "{company} has appointed a new head of its unit in {city}, effective {day}."],
}
_SOURCES = ["", "", " according to the company", ", the company said in a statement",
            ", CEO {ceo} said on {day}", " in its stock exchange release"]
_CEOS = ["Matti Virtanen", "Anna Korhonen", "Jukka Nieminen", "Liisa Makinen"]
_DAYS = ["1 February", "15 March", "23 April", "7 August", "30 October", "12 November"]

_DRUGS = ["metformin", "atorvastatin", "vitamin D", "aspirin", "omega-3", "melatonin", "probiotics", "zinc"]
_OUTCOMES = ["postoperative delirium", "hospital readmission", "blood pressure", "fracture risk", "infection rate",
             "length of stay", "pain scores", "mortality"]
_POPULATIONS = ["elderly patients", "children with asthma", "adults with type 2 diabetes", "pregnant women",
                "patients after cardiac surgery", "nursing home residents", "smokers", "athletes"]
_FILLER = [
    "{outcome} remains a frequent and costly problem among {population}, and effective prevention is lacking.",
    "Previous observational studies suggested a possible benefit of {drug}, but randomized evidence is scarce.",
    "We conducted a randomized, double-blind, placebo-controlled trial at {sites} centres between 2012 and 2016.",
    "A total of {n} {population} were enrolled and randomly assigned to {drug} or placebo for {weeks} weeks.",
    "The primary end point was {outcome}; secondary end points included adverse events and quality of life.",
    "Baseline characteristics, including age, sex and comorbidities, were similar in the two groups.",
    "Adherence to the study treatment was high, and {dropout} participants were lost to follow-up.",
    "Adverse events were mild and occurred at similar rates in both groups.",
    "Analyses were performed according to the intention-to-treat principle with adjustment for study site.",
    "Outcomes were assessed by investigators who were unaware of the treatment assignments.",
    "Subgroup analyses by age, sex and baseline severity were prespecified in the statistical analysis plan.",
    "The trial was funded by a national research council, which had no role in the analysis or reporting.",
]
_FINDINGS = {
    "yes": ["{drug} significantly reduced {outcome} compared with placebo (relative risk {rr}, p < 0.01).",
            "Compared with placebo, {drug} led to a clear and significant reduction in {outcome} (p = 0.00{p})."],
    "no": ["There was no significant difference in {outcome} between the {drug} and placebo groups (p = 0.{p}4).",
           "{drug} did not reduce {outcome}; rates were nearly identical in both groups (p = 0.{p}1)."],
    "maybe": ["{drug} reduced {outcome} in some subgroups, but the overall effect did not reach significance "
              "(p = 0.0{p}); larger trials are needed.",
              "The effect of {drug} on {outcome} was inconsistent across centres, and the evidence remains "
              "inconclusive."],
}

_INTENT_VERBS = ["activate", "cancel", "change", "check", "dispute", "order", "reset", "top up", "transfer", "verify"]
_INTENT_OBJECTS = ["card", "PIN", "payment", "refund", "transfer", "exchange rate", "account", "fee", "cash withdrawal",
                   "direct debit", "virtual card", "identity", "balance", "limit", "statement"]
_GREETINGS = ["", "Hi, ", "Hello! ", "Hey, ", "Excuse me, "]
_ENDINGS = ["", " thanks", " asap", " right now", " please help", " today"]
_INTENT_FRAMES = ["How do I {verb} my {object}?", "I need to {verb} the {object} please",
                  "Can you help me {verb} my {object} today?", "Why can't I {verb} my {object}?",
                  "what's the way to {verb} a {object}", "Is it possible to {verb} my {object} from the app?"]


def _distinct(make, seen: set[str]) -> str:
    """A text `make()` has not produced before (inputs repeat rarely in the public sets)."""
    for _ in range(1000):
        text = make()
        if text not in seen:
            seen.add(text)
            return text
    raise RuntimeError("the fixture's templates ran out of distinct texts; ask for fewer rows")


def _draw_labels(shares: dict[str, float], n: int, rng: random.Random) -> list[str]:
    """Exactly round(share * n) of each label (the rest to the largest), shuffled."""
    counts = {label: round(share * n) for label, share in shares.items()}
    largest = max(shares, key=shares.__getitem__)
    counts[largest] += n - sum(counts.values())
    labels = [label for label, count in counts.items() for _ in range(count)]
    rng.shuffle(labels)
    return labels


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentences(n: int = 600, seed: int = 0) -> list[dict[str, str]]:
    """Financial-news sentences, ~10-25 words, labelled positive / neutral / negative with 60% neutral."""
    rng = random.Random(seed)
    rows = []
    for i, label in enumerate(_draw_labels(SENTENCE_SHARES, n, rng)):
        template = rng.choice(_SENTENCE_TEMPLATES[label])
        template = template[:-1] + rng.choice(_SOURCES) + "."  # a source clause, as news sentences often have
        # A few sentences repeat, as in the public set; the import keeps repeats in one split.
        text = template.format(
            ceo=rng.choice(_CEOS), company=rng.choice(_COMPANIES), city=rng.choice(_CITIES), item=rng.choice(_ITEMS),
            period=rng.choice(_PERIODS), pct=rng.randint(2, 60), amount=f"{rng.uniform(1, 900):.1f}",
            count=rng.randint(20, 900), count2=rng.randint(100, 9000), day=rng.choice(_DAYS))
        rows.append({"id": f"s{i}", "text": text, "label": label})
    return rows


def passage_qa(n: int = 300, seed: int = 0) -> list[dict[str, str]]:
    """A yes/no question over a ~250-token trial abstract -> yes / no / maybe (55/34/11%)."""
    rng = random.Random(seed)
    rows = []
    for i, label in enumerate(_draw_labels(QA_SHARES, n, rng)):
        slots = dict(drug=rng.choice(_DRUGS), outcome=rng.choice(_OUTCOMES), population=rng.choice(_POPULATIONS),
                     sites=rng.randint(3, 40), n=rng.randint(120, 3000), weeks=rng.randint(4, 52),
                     dropout=rng.randint(2, 40), rr=f"0.{rng.randint(40, 80)}", p=rng.randint(1, 9))
        filler = [_capital(sentence.format(**slots)) for sentence in _FILLER]
        finding = _capital(rng.choice(_FINDINGS[label]).format(**slots))
        # The decisive sentence sits among the results, not first or last, as in a real abstract.
        body = filler[:7] + [finding] + filler[7:]
        question = f"Does {slots['drug']} reduce {slots['outcome']} in {slots['population']}?"
        rows.append({"id": f"q{i}", "question": question, "passage": " ".join(body), "answer": label})
    return rows


def intents(n: int = 3080, labels: int = 77, seed: int = 0) -> list[dict[str, str]]:
    """Short banking queries -> one of `labels` intents (verb_object names), counts varying about 3x."""
    rng = random.Random(seed)
    names = [f"{verb.replace(' ', '_')}_{obj.replace(' ', '_').lower()}" for verb in _INTENT_VERBS
             for obj in _INTENT_OBJECTS]
    pairs = [(verb, obj) for verb in _INTENT_VERBS for obj in _INTENT_OBJECTS]
    chosen = rng.sample(range(len(names)), labels)
    weights = [rng.uniform(1, 3) for _ in chosen]
    total = sum(weights)
    shares = {names[c]: w / total for c, w in zip(chosen, weights)}
    by_name = {names[c]: pairs[c] for c in chosen}
    rows = []
    seen: set[str] = set()
    for i, label in enumerate(_draw_labels(shares, n, rng)):
        verb, obj = by_name[label]
        text = _distinct(lambda: rng.choice(_GREETINGS) + rng.choice(_INTENT_FRAMES).format(verb=verb, object=obj)
                         + rng.choice(_ENDINGS), seen)
        rows.append({"id": f"i{i}", "text": text, "category": label})
    return rows


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    """Write rows as JSONL, atomically."""
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path
