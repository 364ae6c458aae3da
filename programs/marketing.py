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
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
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
        "approved": {"easy": ["Budget: approved ({amount}).", "Funds: signed off, {amount}.",
                              "Spend approval: yes ({amount}).", "Budget status - approved at {amount}."],
                     "medium": ["They have {amount} set aside for this.", "Funding of {amount} is signed off.",
                                "Finance has ring-fenced {amount} for the purchase.", "The {amount} they asked for came through."],
                     "hard": ["Finance already released {amount} for the project.", "Money is not the issue: {amount} was approved last week.",
                              "Whatever else is open, the {amount} is approved and waiting.", "Nobody is waiting on money - {amount} got the green light."]},
        "pending": {"easy": ["Budget: pending approval.", "Funds: awaiting sign-off.", "Spend approval: not yet.",
                             "Budget status - submitted, not approved."],
                    "medium": ["The budget still needs sign-off from finance.", "They are putting together a budget request.",
                               "A spending request is sitting with their controller.", "Money will depend on next month's review."],
                    "hard": ["The {amount} budget has not been approved yet.", "Funding isn't confirmed until the board meets next month.",
                             "They talk as if the {amount} is there, but nobody has approved it.", "Approval for the {amount} is still stuck in committee."]},
        "none": {"easy": ["Budget: none.", "Funds: not available.", "Spend approval: no budget exists.", "Budget status - zero allocated."],
                 "medium": ["No money is allocated for this year.", "They have no budget for new tools.",
                            "Every dollar this year is already committed elsewhere.", "There is simply nothing to spend on us."],
                 "hard": ["They loved the demo, but there is no budget at all this year.", "Spending is frozen company-wide; nothing is allocated.",
                          "Keen as they are, not a cent can be found for this.", "Even a small pilot can't be paid for: the budget line is empty."]},
    },
    "authority": {
        "decision_maker": {"easy": ["Contact: {who}, decision maker.", "Buyer: {who} (final approver).",
                                    "Signatory: {who}.", "Decision owner - {who}."],
                           "medium": ["{who} signs off on purchases like this.", "{who} owns the budget and makes the call.",
                                      "Purchases of this size are decided by {who} alone.", "{who} told us the decision is theirs."],
                           "hard": ["{who}, who has the final say on software spend, joined the call.", "No one above {who} needs to approve it.",
                                    "It looked like the board would weigh in, but {who} confirmed they decide.", "Whoever else was on the call, the signature is {who}'s."]},
        "influencer": {"easy": ["Contact: {who}, not the decision maker.", "Buyer: someone above {who}.",
                                "Signatory: not {who}.", "Decision owner - not our contact ({who})."],
                       "medium": ["{who} will need the VP to make the final call.", "{who} is gathering options for the boss.",
                                  "{who} is building a shortlist for leadership to choose from.", "The contract would be signed by {who}'s manager."],
                       "hard": ["{who} is enthusiastic but doesn't sign contracts; the CFO does.", "{who} can recommend us, not approve us.",
                                "Despite the senior title, {who} has to take it to the owners.", "{who} sounded decisive, yet admitted the MD signs."]},
    },
    "need": {
        "clear": {"easy": ["Need: confirmed ({pain}).", "Problem: {pain} (confirmed).", "Pain point - {pain}.", "Use case: fixing {pain}."],
                  "medium": ["Their main pain is {pain}.", "They are struggling with {pain}.",
                             "Every team lead mentioned {pain} as the top problem.", "What hurts most right now is {pain}."],
                  "hard": ["Not a nice-to-have: {pain} is costing them every week.", "They can't keep living with {pain}.",
                           "They downplayed it at first, but {pain} is losing them customers.", "Behind the polite questions is a real problem: {pain}."]},
        "none": {"easy": ["Need: none identified.", "Problem: none found.", "Pain point - none.", "Use case: unclear, nothing to fix."],
                 "medium": ["They are happy with {vendor} and see no gap.", "They have no problem we solve right now.",
                            "They could not name anything our product would fix.", "Everything we offer is already handled by {vendor}."],
                 "hard": ["They asked good questions, but {vendor} already covers everything they need.", "They don't actually have {pain}; they were just curious.",
                          "The long call was friendly, yet no gap in {vendor} came up.", "It sounded like {pain}, but it turned out they solved that years ago."]},
    },
    "timeline": {
        "quarter": {"easy": ["Timeline: this quarter.", "Go-live: within 8 weeks.", "Purchase window: current quarter.", "Target date - end of this quarter."],
                    "medium": ["They want to go live within six weeks.", "They plan to buy before the quarter ends.",
                               "A signature is expected in the next few weeks.", "They need it in place before the quarter closes."],
                    "hard": ["The contract has to be signed before the end of this quarter.", "Not next year - they need it running within two months.",
                             "Earlier they said 'no rush', but the deadline is now this quarter.", "They won't wait for the new year; it must land in the coming weeks."]},
        "year": {"easy": ["Timeline: 6-12 months.", "Go-live: next year.", "Purchase window: later this year or next.", "Target date - about a year out."],
                 "medium": ["They are looking at next year.", "A decision is expected in about nine months.",
                            "They will revisit it when next year's plans are set.", "The project is pencilled in for the following year."],
                 "hard": ["Nothing will happen this quarter; maybe in the second half of next year.", "They won't decide before next year's planning cycle.",
                          "They sounded urgent, but the rollout is scheduled for next year.", "This quarter is out of the question; perhaps in ten months."]},
        "none": {"easy": ["Timeline: none.", "Go-live: not set.", "Purchase window: undefined.", "Target date - none given."],
                 "medium": ["They have no timeline in mind.", "There is no date for a decision.",
                            "Nobody could say when they might buy.", "Timing never came up as a priority."],
                 "hard": ["When asked about timing they couldn't give any date.", "No deadline; they are just exploring.",
                          "They promised to 'get back to us' with no date attached.", "Timing is open-ended - no quarter, no year, nothing."]},
    },
}
DISTRACTORS = ["Their competitor {rival} signed with us last month.", "A previous contact there had budget approved back in 2021.",
               "They downloaded three of our whitepapers.", "They also asked about our holiday opening hours.",
               "{rival} was a hot lead for us last year."]
COMPANIES = ["Acme Logistics", "Birch Dental", "Cobalt Foods", "Delta Schools", "Evergreen Hotels", "Fjord Shipping",
             "Granite Insurance", "Harbor Clinics", "Ion Robotics", "Juniper Retail", "Kestrel Media", "Lumen Energy",
             "Maple Breweries", "Nimbus Aviation", "Orbit Telecom"]
CONTACTS = ["Maria (Head of Operations)", "Tom (IT manager)", "Priya (CFO)", "Luis (office manager)",
            "Sara (VP Sales)", "Ken (analyst)", "Olga (COO)", "Raj (procurement lead)", "Aiko (plant director)",
            "Dmitri (finance controller)"]
PAINS = ["manual invoice processing", "missed delivery windows", "slow customer onboarding", "double data entry",
         "late month-end reporting", "scheduling conflicts", "lost shipment records", "patchy stock counts",
         "slow quote turnaround", "audit findings on expense claims"]
VENDORS = ["their current vendor", "an in-house tool", "a spreadsheet workflow they like", "a rival platform",
           "the ERP add-on they bought last year"]
HEADERS = ["Lead: {company}.", "{company} - discovery call notes:", "Notes on {company}:", "CRM entry for {company}.",
           "Call summary ({company}):"]


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


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    score = rng.choice(SCORES)
    facts = _facts_for(rng, score)
    companies = for_split(COMPANIES, split)
    slots = {"who": rng.choice(for_split(CONTACTS, split)), "amount": f"${rng.randint(2, 90) * 1000:,}",
             "pain": rng.choice(for_split(PAINS, split)), "vendor": rng.choice(for_split(VENDORS, split)),
             "rival": rng.choice(companies)}
    sentences = [rng.choice(for_split(PHRASES[fact][value][difficulty], split)) for fact, value in facts.items()]
    if difficulty != "easy":
        rng.shuffle(sentences)
    if difficulty == "hard":
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(for_split(DISTRACTORS, split)))
    header = rng.choice(for_split(HEADERS, split))
    text = render(rng, " ".join([header, *sentences]), company=rng.choice(companies), **slots)
    return {"notes": text, "lead_score": score, "explanation": _reason(facts, score),
            "family": f"{difficulty}/h{HEADERS.index(header)}"}


DOMAIN = Domain(
    name="marketing",
    program=LeadQualifier,
    metric=label_metric("lead_score"),
    data=lambda: generate_splits("marketing", make_item, inputs=("notes",), n=DEFAULT_ITEMS),
    task="classification",
    description="Sales lead qualification (hot / warm / cold) from CRM notes by the BANT rule.",
    input_fields=("notes",),
    label_fields=("lead_score",),
)
