"""Marketing: qualify a sales lead (hot / warm / cold) from CRM notes by the BANT criteria.

The label follows a fixed rule over four facts (budget, authority, need, timeline), so every
answer is checkable. Easy notes list the facts as fields; medium notes narrate them; hard
notes negate them ("budget has not been approved yet") and add distracting history.
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

LeadScore = Literal["hot", "warm", "cold"]
SCORES: tuple[LeadScore, ...] = ("hot", "warm", "cold")


class QualifyLead(dspy.Signature):
    """Qualify a sales lead. hot: budget approved AND the contact is the decision maker AND a
    confirmed need AND purchase planned this quarter. cold: no budget or no need. warm: any
    other lead."""

    context: str = context_field()
    notes: str = dspy.InputField(desc="CRM notes about the lead")
    lead_score: LeadScore = dspy.OutputField()


class LeadQualifier(PredictProgram):
    signature = QualifyLead


# fact -> value -> difficulty -> phrasings; {who}, {amount}, {pain}, {vendor} are slots.
PHRASES: dict[str, dict[str, dict[str, list[str]]]] = {
    "budget": {
        "approved": {"easy": ["Budget: approved ({amount})."],
                     "medium": ["They have {amount} set aside for this.", "Funding of {amount} is signed off."],
                     "hard": ["Finance already released {amount} for the project.", "Money is not the issue: {amount} was approved last week."]},
        "pending": {"easy": ["Budget: pending approval."],
                    "medium": ["The budget still needs sign-off from finance.", "They are putting together a budget request."],
                    "hard": ["The {amount} budget has not been approved yet.", "Funding isn't confirmed until the board meets next month."]},
        "none": {"easy": ["Budget: none."],
                 "medium": ["No money is allocated for this year.", "They have no budget for new tools."],
                 "hard": ["They loved the demo, but there is no budget at all this year.", "Spending is frozen company-wide; nothing is allocated."]},
    },
    "authority": {
        "decision_maker": {"easy": ["Contact: {who}, decision maker."],
                           "medium": ["{who} signs off on purchases like this.", "{who} owns the budget and makes the call."],
                           "hard": ["{who}, who has the final say on software spend, joined the call.", "No one above {who} needs to approve it."]},
        "influencer": {"easy": ["Contact: {who}, not the decision maker."],
                       "medium": ["{who} will need the VP to make the final call.", "{who} is gathering options for the boss."],
                       "hard": ["{who} is enthusiastic but doesn't sign contracts; the CFO does.", "{who} can recommend us, not approve us."]},
    },
    "need": {
        "clear": {"easy": ["Need: confirmed ({pain})."],
                  "medium": ["Their main pain is {pain}.", "They are struggling with {pain}."],
                  "hard": ["Not a nice-to-have: {pain} is costing them every week.", "They can't keep living with {pain}."]},
        "none": {"easy": ["Need: none identified."],
                 "medium": ["They are happy with {vendor} and see no gap.", "They have no problem we solve right now."],
                 "hard": ["They asked good questions, but {vendor} already covers everything they need.", "They don't actually have {pain}; they were just curious."]},
    },
    "timeline": {
        "quarter": {"easy": ["Timeline: this quarter."],
                    "medium": ["They want to go live within six weeks.", "They plan to buy before the quarter ends."],
                    "hard": ["The contract has to be signed before the end of this quarter.", "Not next year - they need it running within two months."]},
        "year": {"easy": ["Timeline: 6-12 months."],
                 "medium": ["They are looking at next year.", "A decision is expected in about nine months."],
                 "hard": ["Nothing will happen this quarter; maybe in the second half of next year.", "They won't decide before next year's planning cycle."]},
        "none": {"easy": ["Timeline: none."],
                 "medium": ["They have no timeline in mind.", "There is no date for a decision."],
                 "hard": ["When asked about timing they couldn't give any date.", "No deadline; they are just exploring."]},
    },
}
DISTRACTORS = ["Their competitor {rival} signed with us last month.", "A previous contact there had budget approved back in 2021.",
               "They downloaded three of our whitepapers.", "They also asked about our holiday opening hours.",
               "{rival} was a hot lead for us last year."]
COMPANIES = ["Acme Logistics", "Birch Dental", "Cobalt Foods", "Delta Schools", "Evergreen Hotels", "Fjord Shipping",
             "Granite Insurance", "Harbor Clinics", "Ion Robotics", "Juniper Retail", "Kestrel Media", "Lumen Energy"]
CONTACTS = ["Maria (Head of Operations)", "Tom (IT manager)", "Priya (CFO)", "Luis (office manager)",
            "Sara (VP Sales)", "Ken (analyst)", "Olga (COO)", "Raj (procurement lead)"]
PAINS = ["manual invoice processing", "missed delivery windows", "slow customer onboarding", "double data entry",
         "late month-end reporting", "scheduling conflicts"]
VENDORS = ["their current vendor", "an in-house tool", "a spreadsheet workflow they like"]


def lead_score(facts: dict[str, str]) -> str:
    if facts["budget"] == "none" or facts["need"] == "none":
        return "cold"
    hot = facts["budget"] == "approved" and facts["authority"] == "decision_maker" and facts["timeline"] == "quarter"
    return "hot" if hot else "warm"


def _facts_for(rng: random.Random, score: str) -> dict[str, str]:
    """Facts that produce `score`, drawn at random among all combinations that do."""
    while True:
        facts = {"budget": rng.choice(["approved", "pending", "none"]),
                 "authority": rng.choice(["decision_maker", "influencer"]),
                 "need": rng.choice(["clear", "none"]),
                 "timeline": rng.choice(["quarter", "year", "none"])}
        if score == "hot":
            facts.update(budget="approved", authority="decision_maker", need="clear", timeline="quarter")
        if lead_score(facts) == score:
            return facts


def _reason(facts: dict[str, str], score: str) -> str:
    if score == "hot":
        return "budget approved, decision maker, confirmed need and buying this quarter: all four hot criteria hold."
    if score == "cold":
        missing = [name for name, value in (("no budget", facts["budget"]), ("no need", facts["need"])) if value == "none"]
        return f"{' and '.join(missing)}, so the lead is cold whatever else is said."
    gaps = [text for text, ok in (("budget not approved", facts["budget"] == "approved"),
                                  ("contact is not the decision maker", facts["authority"] == "decision_maker"),
                                  ("no purchase this quarter", facts["timeline"] == "quarter")) if not ok]
    return f"budget and need exist but {'; '.join(gaps)}, so warm, not hot."


def make_item(rng: random.Random, difficulty: str) -> dict:
    score = rng.choice(SCORES)
    facts = _facts_for(rng, score)
    slots = {"who": rng.choice(CONTACTS), "amount": f"${rng.randint(2, 90) * 1000:,}", "pain": rng.choice(PAINS),
             "vendor": rng.choice(VENDORS), "rival": rng.choice(COMPANIES)}
    sentences = [rng.choice(PHRASES[fact][value][difficulty]) for fact, value in facts.items()]
    if difficulty != "easy":
        rng.shuffle(sentences)
    if difficulty == "hard":
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(DISTRACTORS))
    header = rng.choice(["Lead: {company}.", "{company} - discovery call notes:", "Notes on {company}:"])
    text = render(rng, " ".join([header, *sentences]), company=rng.choice(COMPANIES), **slots)
    return {"notes": text, "lead_score": score, "explanation": _reason(facts, score)}


DOMAIN = Domain(
    name="marketing",
    program=LeadQualifier,
    metric=label_metric("lead_score"),
    data=lambda: generate_examples("marketing", make_item, inputs=("notes",), n=DEFAULT_ITEMS),
    task="classification",
    description="Sales lead qualification (hot / warm / cold) from CRM notes by the BANT rule.",
    input_fields=("notes",),
    label_fields=("lead_score",),
)
