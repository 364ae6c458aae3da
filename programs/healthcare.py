"""Healthcare: urgency triage of a symptom description.

Synthetic benchmark items, not clinical guidance. Easy items name a textbook symptom; medium
ones say it the way a caller would; hard ones deny red flags, mention past history, or bury
the serious symptom behind a routine request (the most serious current symptom decides).

Each split has its own symptoms, patients, callers, past events and phrasings (`for_split`), so a
test item describes a symptom in words training never used.
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render, sentence_case
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
        ("heavy bleeding from a thigh wound that will not stop with pressure",
         "blood soaking through towel after towel from a leg wound", "uncontrolled bleeding"),
        ("sudden loss of vision in one eye", "everything going dark in one eye all at once", "vision loss"),
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
        ("a painful, swollen knee joint with a low fever", "a knee that has puffed up, hurts to bend and feels hot",
         "a swollen joint"),
        ("an asthma flare needing the reliever inhaler every three hours",
         "wheezing badly enough to need the blue puffer every few hours", "wheezing"),
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
        ("a repeat prescription for contraceptive pills", "running low on the usual pill and needing more", ""),
        ("a request for a fitness-to-travel letter", "wanting a note from the doctor before a long trip abroad", ""),
    ],
}
PAST_EVENTS = ["a heart attack", "a stroke", "a seizure disorder", "anaphylaxis to peanuts", "a collapsed lung",
               "a blood clot in the lung", "bypass surgery", "kidney stones", "a burst appendix", "meningitis"]
PATIENTS = [
    "A 58-year-old man", "A 34-year-old woman", "A 72-year-old retired teacher", "A 25-year-old runner",
    "A 45-year-old office worker", "A 16-year-old student", "A 50-year-old builder", "A 39-year-old nurse",
    "A 67-year-old woman", "A 29-year-old cyclist", "An 81-year-old man", "A 42-year-old chef",
    "A 63-year-old farmer", "A 31-year-old new mother", "A 55-year-old bus driver", "A 47-year-old accountant",
    "A 19-year-old footballer", "A 76-year-old widower", "A 36-year-old teacher", "A 61-year-old pharmacist",
    "A 23-year-old waiter", "A 69-year-old gardener", "A 44-year-old taxi driver", "A 52-year-old librarian",
    "A 27-year-old software developer",
]
CALLERS = ["my husband", "my wife", "my dad", "my mum", "my son", "my daughter", "my neighbour", "my flatmate",
           "my grandmother", "my colleague", "my brother", "my sister", "my uncle", "my partner", "my aunt"]

EASY = ["{patient} [presents with|is seen for|calls about] {symptom}.",
        "Triage note: {patient}, reason for contact: {symptom}.",
        "{patient}. Presenting complaint: {symptom}.",
        "Chief concern recorded at [reception|the front desk] for {patient_lower}: {symptom}.",
        "Nurse line summary - {symptom} ({patient_lower}, [first call|walk-in])."]
MEDIUM = ["Caller: \"[Hi,|Hello,|Sorry to bother you, but] {caller} [has got|is dealing with|has] {symptom}.\"",
          "Phone call: \"{Caller} [has|has had] {symptom}[ - what should we do?| - is that serious?|.]\"",
          "Portal message: \"[This morning|Overnight|Today] {caller} [woke up with|noticed] {symptom}.\"",
          "Text to the surgery: \"[quick question|hi again|sorry, one thing], {caller} says there's {symptom}, [do we come in?|should we come in?|what now?]\"",
          "Voicemail left at [7pm|lunchtime|8am]: \"It's about {caller}. {Symptom}. [Please ring back.|Call me when you can.]\""]
NEGATED = ["{patient}, [seen today|calling today] about {symptom}. [Denies|No|Has no] {denied_a} or {denied_b}.",
           "{patient} [calls|comes in] about {symptom}; [explicitly denies|reports no] {denied_a} and no {denied_b}.",
           "No {denied_a}, no {denied_b} - the only problem {patient_lower} describes is {symptom}.",
           "Asked about {denied_a} and {denied_b}: neither. What brings {patient_lower} in is {symptom}.",
           "Screening questions negative for {denied_a} and {denied_b}; main issue today is {symptom} ({patient_lower})."]
HISTORY = ["{patient} with a history of {past} [in 2019|last year|years ago] [comes in today about|now calls about] {symptom}.",
           "History: {past} [in 2015|a decade ago]. Today: {symptom}.[ Otherwise well.|]",
           "Previously treated for {past}, fully recovered. New problem reported by {patient_lower}: {symptom}.",
           "Old notes mention {past}; that is not why {patient_lower} is calling. Current complaint: {symptom}.",
           "{patient}, background of {past} long ago, contacts us about {symptom}."]
BURIED = ["{patient} [came in for|is asking about] {lead}, [but|and] [also mentions|adds that there has been] {symptom} [since this morning|for the last hour|today].",
          "[Appointment request|Booking note]: {lead}. [Patient adds:|By the way,] {symptom}.",
          "Main reason for the visit is {lead}; almost as an afterthought {patient_lower} mentions {symptom}.",
          "Routine slot booked for {lead}. At check-in the receptionist hears about {symptom}.",
          "Email subject: {lead}. Last line of the email: also {symptom} - probably nothing?"]
TEMPLATES = {"easy": EASY, "medium": MEDIUM, "negated": NEGATED, "history": HISTORY, "buried": BURIED}


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    urgency = rng.choice(LABELS)
    clinical, lay, _ = rng.choice(for_split(SYMPTOMS[urgency], split))
    caller = rng.choice(for_split(CALLERS, split))
    patient = rng.choice(for_split(PATIENTS, split))
    slots = {"patient": patient, "patient_lower": patient[0].lower() + patient[1:], "caller": caller,
             "Caller": sentence_case(caller)}

    def draw(kind: str) -> tuple[str, str]:
        template = rng.choice(for_split(TEMPLATES[kind], split))
        return template, f"{urgency}/{kind}/t{TEMPLATES[kind].index(template)}"

    if difficulty == "easy":
        template, family = draw("easy")
        text = render(rng, template, symptom=clinical, Symptom=sentence_case(clinical), **slots)
        why = f"'{clinical}' is {_meaning(urgency)}."
        return {"symptoms": text, "urgency": urgency, "explanation": why, "family": family}
    if difficulty == "medium":
        template, family = draw("medium")
        text = render(rng, template, symptom=lay, Symptom=sentence_case(lay), **slots)
        why = f"'{lay}' describes {_meaning(urgency)}."
        return {"symptoms": text, "urgency": urgency, "explanation": why, "family": family}
    twist = rng.choice(["negated", "history"] if urgency == "routine" else ["negated", "history", "buried"])
    symptom = rng.choice([clinical, lay])
    template, family = draw(twist)
    if twist == "negated":
        deniable = [name for entries in SYMPTOMS.values() for _, other, name in for_split(entries, split)
                    if name and other != lay]
        denied_a, denied_b = rng.sample(deniable, 2)
        text = render(rng, template, symptom=symptom, denied_a=denied_a, denied_b=denied_b, **slots)
        why = f"{denied_a} and {denied_b} are denied, so they do not count; '{symptom}' is {_meaning(urgency)}."
    elif twist == "history":
        past = rng.choice(for_split(PAST_EVENTS, split))
        text = render(rng, template, symptom=symptom, past=past, **slots)
        why = f"{past} is past history; today's complaint '{symptom}' is {_meaning(urgency)}."
    else:
        lead = rng.choice(for_split(SYMPTOMS["routine"], split))[0]
        text = render(rng, template, symptom=symptom, lead=lead, **slots)
        why = f"the visit is about {lead}, but '{symptom}' is {_meaning(urgency)} and the most serious symptom decides."
    return {"symptoms": text, "urgency": urgency, "explanation": why, "family": family}


def _meaning(urgency: str) -> str:
    return {"emergency": "an emergency red flag", "urgent": "urgent: to be seen within 24 hours",
            "routine": "routine: no red flags"}[urgency]


DOMAIN = Domain(
    name="healthcare",
    program=Triage,
    metric=label_metric("urgency"),
    data=lambda: generate_splits("healthcare", make_item, inputs=("symptoms",), n=DEFAULT_ITEMS),
    task="classification",
    description="Urgency triage (emergency / urgent / routine) of a symptom description. Synthetic; not clinical guidance.",
    input_fields=("symptoms",),
    label_fields=("urgency",),
)
