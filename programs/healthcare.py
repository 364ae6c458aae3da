"""Healthcare: urgency triage of a symptom description.

Synthetic benchmark items, not clinical guidance. Easy items name a textbook symptom; medium
ones say it the way a caller would; hard ones deny red flags, mention past history, or bury
the serious symptom behind a routine request (the most serious current symptom decides).
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render, sentence_case
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

Urgency = Literal["emergency", "urgent", "routine"]
LABELS: tuple[Urgency, ...] = ("emergency", "urgent", "routine")


class TriageSymptoms(dspy.Signature):
    """Triage the patient's current symptoms. emergency: call emergency services now;
    urgent: needs to be seen within 24 hours; routine: a regular appointment is fine."""

    context: str = context_field()
    symptoms: str = dspy.InputField(desc="the patient's or caller's description")
    urgency: Urgency = dspy.OutputField()


class Triage(PredictProgram):
    signature = TriageSymptoms


# (clinical wording, lay wording, short name used when the symptom is denied or past)
SYMPTOMS: dict[str, list[tuple[str, str, str]]] = {
    "emergency": [
        ("crushing chest pain spreading to the left arm",
         "a heavy pressure in the chest that goes down the left arm", "chest pain"),
        ("sudden weakness on one side of the body and slurred speech",
         "one side of the face drooping and words coming out jumbled", "slurred speech"),
        ("severe difficulty breathing with bluish lips",
         "real trouble getting any air in, lips going a bit blue", "shortness of breath"),
        ("vomiting bright red blood", "a lot of blood coming up when vomiting", "vomiting blood"),
        ("a seizure lasting more than five minutes",
         "a fit, shaking all over and not responding for several minutes", "seizures"),
        ("swelling of the tongue and throat after a bee sting",
         "the throat closing up and the tongue swelling after being stung", "throat swelling"),
        ("a sudden severe headache, the worst of their life",
         "a headache that hit like a thunderclap, far worse than any before", "sudden severe headache"),
        ("loss of consciousness after a fall from a ladder",
         "a blackout for a minute after falling off a ladder", "loss of consciousness"),
    ],
    "urgent": [
        ("a fever of 39.4 C for three days", "a high temperature for three days, really burning up", "fever"),
        ("ear pain with a fever", "a throbbing ear and hot, shivery spells", "ear pain"),
        ("painful urination and lower back pain", "a burning feeling when peeing and an ache low in the back", "painful urination"),
        ("a deep cut on the hand that may need stitches",
         "a gash on the palm from a kitchen knife that keeps opening up", "a deep cut"),
        ("a swollen, painful ankle after a fall, still able to bear weight",
         "a puffy, sore ankle after tripping on the stairs, though they can walk on it", "ankle pain"),
        ("vomiting and diarrhea for 24 hours with little fluid kept down",
         "a tummy bug since yesterday, barely keeping water down", "vomiting"),
        ("a worsening cough with green sputum for five days",
         "a chesty cough bringing up green phlegm that gets worse each day", "a productive cough"),
        ("a red, hot, spreading rash around a wound",
         "the skin around a scrape turning red and warm and spreading", "a spreading rash"),
    ],
    "routine": [
        ("a refill of blood pressure medication", "a need for more of the usual blood pressure tablets", ""),
        ("mild seasonal allergies", "a runny nose and itchy eyes, like every spring", ""),
        ("a mole that has not changed in years", "a spot on the back they have had forever and want checked", ""),
        ("dry, itchy skin on the elbows", "rough, flaky patches on the elbows", ""),
        ("a request for a flu vaccination", "a question about getting this year's flu shot", ""),
        ("mild back stiffness after gardening that eases with movement",
         "a stiff back after weekend gardening that loosens up during the day", ""),
        ("a follow-up on normal cholesterol results", "a question about last month's cholesterol test, which was fine", ""),
        ("occasional heartburn after spicy meals", "a bit of indigestion now and then after a curry", ""),
    ],
}
PAST_EVENTS = ["a heart attack", "a stroke", "a seizure disorder", "anaphylaxis to peanuts", "a collapsed lung"]
PATIENTS = [
    "A 58-year-old man", "A 34-year-old woman", "A 72-year-old retired teacher", "A 25-year-old runner",
    "A 45-year-old office worker", "A 16-year-old student", "A 50-year-old builder", "A 39-year-old nurse",
    "A 67-year-old woman", "A 29-year-old cyclist", "An 81-year-old man", "A 42-year-old chef",
]
CALLERS = ["my husband", "my wife", "my dad", "my mum", "my son", "my daughter", "my neighbour", "my flatmate"]

EASY = ["{patient} [presents with|is seen for|calls about] {symptom}.",
        "Triage note: {patient}, reason for contact: {symptom}.",
        "{patient}. Presenting complaint: {symptom}."]
MEDIUM = ["Caller: \"[Hi,|Hello,|Sorry to bother you, but] {caller} [has got|is dealing with|has] {symptom}.\"",
          "Phone call: \"{Caller} [has|has had] {symptom}[ - what should we do?| - is that serious?|.]\"",
          "Portal message: \"[This morning|Overnight|Today] {caller} [woke up with|noticed] {symptom}.\""]
NEGATED = ["{patient}, [seen today|calling today] about {symptom}. [Denies|No|Has no] {denied_a} or {denied_b}.",
           "{patient} [calls|comes in] about {symptom}; [explicitly denies|reports no] {denied_a} and no {denied_b}."]
HISTORY = ["{patient} with a history of {past} [in 2019|last year|years ago] [comes in today about|now calls about] {symptom}.",
           "History: {past} [in 2015|a decade ago]. Today: {symptom}.[ Otherwise well.|]"]
BURIED = ["{patient} [came in for|is asking about] {lead}, [but|and] [also mentions|adds that there has been] {symptom} [since this morning|for the last hour|today].",
          "[Appointment request|Booking note]: {lead}. [Patient adds:|By the way,] {symptom}."]


def make_item(rng: random.Random, difficulty: str) -> dict:
    urgency = rng.choice(LABELS)
    clinical, lay, _ = rng.choice(SYMPTOMS[urgency])
    caller = rng.choice(CALLERS)
    slots = {"patient": rng.choice(PATIENTS), "caller": caller, "Caller": sentence_case(caller)}
    if difficulty == "easy":
        text = render(rng, rng.choice(EASY), symptom=clinical, **slots)
        why = f"'{clinical}' is {_meaning(urgency)}."
        return {"symptoms": text, "urgency": urgency, "explanation": why}
    if difficulty == "medium":
        text = render(rng, rng.choice(MEDIUM), symptom=lay, **slots)
        why = f"'{lay}' describes {_meaning(urgency)}."
        return {"symptoms": text, "urgency": urgency, "explanation": why}
    twist = rng.choice(["negated", "history"] if urgency == "routine" else ["negated", "history", "buried"])
    symptom = rng.choice([clinical, lay])
    if twist == "negated":
        deniable = [name for entries in SYMPTOMS.values() for _, other, name in entries if name and other != lay]
        denied_a, denied_b = rng.sample(deniable, 2)
        text = render(rng, rng.choice(NEGATED), symptom=symptom, denied_a=denied_a, denied_b=denied_b, **slots)
        why = f"{denied_a} and {denied_b} are denied, so they do not count; '{symptom}' is {_meaning(urgency)}."
    elif twist == "history":
        past = rng.choice(PAST_EVENTS)
        text = render(rng, rng.choice(HISTORY), symptom=symptom, past=past, **slots)
        why = f"{past} is past history; today's complaint '{symptom}' is {_meaning(urgency)}."
    else:
        lead = rng.choice(SYMPTOMS["routine"])[0]
        text = render(rng, rng.choice(BURIED), symptom=symptom, lead=lead, **slots)
        why = f"the visit is about {lead}, but '{symptom}' is {_meaning(urgency)} and the most serious symptom decides."
    return {"symptoms": text, "urgency": urgency, "explanation": why}


def _meaning(urgency: str) -> str:
    return {"emergency": "an emergency red flag", "urgent": "urgent: to be seen within 24 hours",
            "routine": "routine: no red flags"}[urgency]


DOMAIN = Domain(
    name="healthcare",
    program=Triage,
    metric=label_metric("urgency"),
    data=lambda: generate_examples("healthcare", make_item, inputs=("symptoms",), n=DEFAULT_ITEMS),
    task="classification",
    description="Urgency triage (emergency / urgent / routine) of a symptom description. Synthetic; not clinical guidance.",
    input_fields=("symptoms",),
    label_fields=("urgency",),
)
