"""Research: does a study finding support, refute, or not address a claim?

Claim verification as a systematic reviewer does it. Easy evidence says "significantly" or
"did not measure"; medium evidence gives effect sizes with confidence intervals and
paraphrases the outcome; hard evidence opens with "contrary to earlier reports", reports a
significant secondary outcome next to a null primary one, or studies a different population.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render, sentence_case
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

Verdict = Literal["supports", "refutes", "not_enough_info"]
VERDICTS: tuple[Verdict, ...] = ("supports", "refutes", "not_enough_info")


class VerifyClaim(dspy.Signature):
    """Judge whether the evidence supports the claim, refutes it (no effect or the opposite
    effect in the claimed population), or gives not enough information (a different population
    or outcome, or the outcome was not measured)."""

    context: str = context_field()
    claim: str = dspy.InputField()
    evidence: str = dspy.InputField(desc="a study finding")
    verdict: Verdict = dspy.OutputField()


class ClaimVerifier(PredictProgram):
    signature = VerifyClaim


@dataclass(frozen=True)
class Study:
    intervention: str
    outcome: str
    outcome_paraphrase: str
    verb: str  # base form of the claimed effect: "reduce", "improve", "increase"
    opposite: str  # past tense of the opposite effect
    population: str
    other_population: str
    secondary: str  # another outcome the study might report


STUDIES = [
    Study("daily low-dose aspirin", "the risk of a second heart attack", "recurrent myocardial infarction", "reduce",
          "raised", "adults who have had a heart attack", "healthy adults under 40", "headache frequency"),
    Study("vitamin D supplementation", "fracture risk", "the rate of bone fractures", "reduce", "increased",
          "women over 65", "young athletes", "mood scores"),
    Study("a Mediterranean diet", "systolic blood pressure", "the upper blood-pressure reading", "reduce", "raised",
          "adults with hypertension", "mice fed a high-salt diet", "body weight"),
    Study("mindfulness training", "anxiety scores", "self-reported anxiety", "reduce", "increased",
          "university students", "retired adults", "sleep duration"),
    Study("high-intensity interval training", "aerobic fitness", "VO2 max", "improve", "worsened",
          "sedentary adults", "elite cyclists", "resting heart rate"),
    Study("a text-message reminder program", "medication adherence", "the share of doses taken on time", "improve",
          "worsened", "patients with type 2 diabetes", "patients with asthma", "clinic attendance"),
    Study("the drug ABX-12", "HbA1c", "long-term blood sugar (HbA1c)", "reduce", "raised",
          "adults with type 2 diabetes", "laboratory rats", "LDL cholesterol"),
    Study("cognitive behavioural therapy for insomnia", "the time taken to fall asleep", "sleep-onset latency", "reduce",
          "lengthened", "adults with chronic insomnia", "night-shift workers without insomnia", "daytime fatigue"),
    Study("hand-hygiene training", "hospital-acquired infections", "infections picked up on the ward", "reduce",
          "increased", "surgical wards", "nursing homes", "staff absences"),
    Study("early mobilisation", "length of hospital stay", "days spent in hospital", "reduce", "lengthened",
          "patients after hip surgery", "patients after heart surgery", "pain scores"),
]
PAST = {"reduce": "reduced", "improve": "improved", "increase": "increased"}
CLAIMS = ["{I} {verb}s {O} in {P}.", "In {P}, {I} {verb}s {O}.", "Among {P}, {O} can be {past} by {I}."]
EVIDENCE = {
    ("supports", "easy"): ["In a randomized trial of {n} {P}, {I} significantly {past} {O} compared with placebo (p = {p})."],
    ("refutes", "easy"): ["In a randomized trial of {n} {P}, {I} did not {verb} {O} compared with placebo (no significant difference, p = {p_null})."],
    ("not_enough_info", "easy"): ["A trial of {I} in {n} {P} reported on safety only; it did not measure {O}."],
    ("supports", "medium"): ["Among {n} {P} randomized to {I} or usual care, {O2} {past} by {effect}% (95% CI {lo} to {hi})."],
    ("refutes", "medium"): ["Among {n} {P} randomized to {I} or usual care, the change in {O2} was {null_effect}% (95% CI -{null_lo} to {null_hi}), consistent with no effect.",
                            "Among {n} {P}, {I} {opposite} {O2} relative to usual care (p = {p})."],
    ("not_enough_info", "medium"): ["A cohort of {n} {P} receiving {I} was followed for {months} months; the only outcome reported was {S}."],
    ("supports", "hard"): ["Contrary to earlier observational reports, {n} {P} randomized to {I} had significantly {past} {O2} (p = {p})."],
    ("refutes", "hard"): ["{I_cap} {past_secondary} {S} (p = {p}) but had no significant effect on {O2} (p = {p_null}) in {n} {P}."],
    ("not_enough_info", "hard"): ["In a trial of {n} {Q}, {I} significantly {past} {O} (p = {p})."],
}
WHY = {
    "supports": "the study population matches and {O} changed in the claimed direction significantly.",
    "refutes": "in the claimed population the effect on {O} was absent or opposite.",
    "not_enough_info": "the study did not test {O} in {P}.",
}


def make_item(rng: random.Random, difficulty: str) -> dict:
    verdict = rng.choice(VERDICTS)
    study = rng.choice(STUDIES)
    claim = sentence_case(render(rng, rng.choice(CLAIMS), I=study.intervention, verb=study.verb,
                                 past=PAST[study.verb], O=study.outcome, P=study.population))
    effect, null_effect = rng.randint(8, 30), rng.randint(1, 3)
    slots = {"I": study.intervention, "I_cap": sentence_case(study.intervention), "O": study.outcome,
             "O2": study.outcome_paraphrase, "P": study.population, "Q": study.other_population, "S": study.secondary,
             "verb": study.verb, "past": PAST[study.verb], "opposite": study.opposite, "past_secondary": "improved",
             "n": rng.randint(4, 250) * 10, "p": rng.choice(["0.001", "0.004", "0.01", "0.02", "0.03"]),
             "p_null": rng.choice(["0.34", "0.41", "0.58", "0.72", "0.9"]), "months": rng.choice([6, 12, 18, 24]),
             # Confidence intervals that contain their estimate; the null one also contains zero.
             "effect": effect, "lo": effect - rng.randint(2, 6), "hi": effect + rng.randint(2, 6),
             "null_effect": null_effect, "null_lo": rng.randint(2, 6), "null_hi": null_effect + rng.randint(2, 6)}
    evidence = render(rng, rng.choice(EVIDENCE[(verdict, difficulty)]), **slots)
    return {"claim": claim, "evidence": evidence, "verdict": verdict,
            "explanation": WHY[verdict].format(**slots)}


DOMAIN = Domain(
    name="research",
    program=ClaimVerifier,
    metric=label_metric("verdict"),
    data=lambda: generate_examples("research", make_item, inputs=("claim", "evidence"), n=DEFAULT_ITEMS),
    task="classification",
    description="Claim verification: does a study finding support, refute, or not address a health-research claim?",
    input_fields=("claim", "evidence"),
    label_fields=("verdict",),
)
