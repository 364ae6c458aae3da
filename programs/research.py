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
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render, sentence_case
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


# Interventions, outcomes and populations are dealt to splits too: test claims concern studies training never saw.
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
    Study("nicotine replacement therapy", "smoking relapse", "the return to regular smoking", "reduce", "increased",
          "adults trying to quit smoking", "teenagers who vape", "weight gain"),
    Study("iron supplementation", "anaemia prevalence", "the share of participants with low haemoglobin", "reduce",
          "raised", "pregnant women", "postmenopausal women", "fatigue scores"),
    Study("a structured walking program", "walking distance", "the six-minute walk distance", "improve", "worsened",
          "patients with peripheral artery disease", "marathon runners", "quality-of-life scores"),
    Study("probiotic supplements", "antibiotic-associated diarrhoea", "diarrhoea after antibiotic use", "reduce",
          "increased", "hospitalised adults on antibiotics", "healthy infants", "bloating"),
    Study("a telehealth follow-up service", "hospital readmissions", "the number of patients readmitted", "reduce",
          "increased", "patients discharged after heart failure", "patients after knee replacement",
          "patient satisfaction"),
    Study("a school-based exercise program", "childhood obesity", "the share of pupils with obesity", "reduce",
          "increased", "primary-school children", "adolescent athletes", "reading scores"),
]
PAST = {"reduce": "reduced", "improve": "improved", "increase": "increased"}
# The claimed effect as a noun and as a comparison: "a 12% reduction", "12% lower".
NOUN = {"reduce": "reduction", "improve": "improvement", "increase": "increase"}
COMPARED = {"reduce": "lower", "improve": "better", "increase": "higher"}
CLAIMS = ["{I} {verb}s {O} in {P}.", "In {P}, {I} {verb}s {O}.", "Among {P}, {O} can be {past} by {I}.",
          "Giving {I} to {P} {verb}s {O}.", "For {P}, {I} is an effective way to {verb} {O}."]
# Significant and null p-values are split like phrasings, so a test p-value is never one seen in training.
P_SIGNIFICANT = ["0.001", "0.004", "0.01", "0.02", "0.03"]
P_NULL = ["0.34", "0.41", "0.58", "0.72", "0.9"]
EVIDENCE = {
    ("supports", "easy"): [
        "In a randomized trial of {n} {P}, {I} significantly {past} {O} compared with placebo (p = {p}).",
        "{I} significantly {past} {O} in a placebo-controlled study of {n} {P} (p = {p}).",
        "A double-blind trial enrolling {n} {P} found that {I} significantly {past} {O} versus control (p = {p}).",
        "Randomly allocating {n} {P} to {I} or a dummy treatment showed that {I} {past} {O} to a statistically "
        "significant degree (p = {p}).",
        "Compared with controls, {P} given {I} (n = {n}) had significantly {past} {O}, p = {p}."],
    ("refutes", "easy"): [
        "In a randomized trial of {n} {P}, {I} did not {verb} {O} compared with placebo (no significant difference, "
        "p = {p_null}).",
        "{I} failed to {verb} {O} in a placebo-controlled study of {n} {P} (p = {p_null}).",
        "A double-blind trial enrolling {n} {P} found no significant effect of {I} on {O} (p = {p_null}).",
        "After randomly allocating {n} {P} to {I} or a dummy treatment, investigators saw no difference in {O} "
        "between the groups (p = {p_null}).",
        "{P} given {I} (n = {n}) showed no significant change in {O} relative to controls, p = {p_null}."],
    ("not_enough_info", "easy"): [
        "A trial of {I} in {n} {P} reported on safety only; it did not measure {O}.",
        "{I} was tested in {n} {P}, but the study tracked only adverse events and never assessed {O}.",
        "A study of {n} {P} given {I} looked solely at tolerability; {O} was not measured.",
        "Investigators enrolled {n} {P} to check whether {I} was feasible to deliver — no data on {O} were collected.",
        "The only outcomes recorded in {n} {P} receiving {I} were side effects and dropout; {O} lay outside the "
        "study's scope."],
    ("supports", "medium"): [
        "Among {n} {P} randomized to {I} or usual care, {O2} {past} by {effect}% (95% CI {lo} to {hi}).",
        "{I} {past} {O2} by {effect}% relative to usual care in {n} {P} (95% confidence interval {lo}% to {hi}%).",
        "In {n} {P}, the group receiving {I} saw {O2} {past} by an estimated {effect}% [95% CI, {lo}-{hi}] "
        "compared with controls.",
        "Pooled data from {n} {P} put the {noun} in {O2} with {I} at {effect}%, with an interval of {lo}% to {hi}% "
        "that stays clear of zero.",
        "{O2} was {effect}% {compared} with {I} than with usual care (n = {n} {P}; 95% CI {lo} to {hi})."],
    ("refutes", "medium"): [
        "Among {n} {P} randomized to {I} or usual care, the change in {O2} was {null_effect}% "
        "(95% CI -{null_lo} to {null_hi}), consistent with no effect.",
        "Among {n} {P}, {I} {opposite} {O2} relative to usual care (p = {p}).",
        "In {n} {P}, {I} shifted {O2} by {null_effect}% versus usual care; the 95% interval ran from -{null_lo}% "
        "to {null_hi}%.",
        "Rather than helping, {I} {opposite} {O2} in {n} {P} compared with the usual-care group (p = {p}).",
        "The estimated effect of {I} on {O2} across {n} {P} was {null_effect}%, with a 95% confidence interval "
        "spanning zero (-{null_lo} to {null_hi})."],
    ("not_enough_info", "medium"): [
        "A cohort of {n} {P} receiving {I} was followed for {months} months; the only outcome reported was {S}.",
        "Over {months} months of follow-up, {n} {P} on {I} were assessed for {S} alone.",
        "{I} was given to {n} {P} for {months} months, and the investigators report {S} but nothing else.",
        "The {months}-month registry of {n} {P} using {I} published data on {S}; other endpoints were not analysed.",
        "For {months} months researchers tracked {S} in {n} {P} receiving {I}, without recording any other measure."],
    ("supports", "hard"): [
        "Contrary to earlier observational reports, {n} {P} randomized to {I} had significantly {past} {O2} "
        "(p = {p}).",
        "Although earlier studies found no benefit, this trial of {n} {P} showed {I} significantly {past} {O2} "
        "(p = {p}).",
        "Despite skepticism from prior case series, randomizing {n} {P} to {I} significantly {past} {O2} (p = {p}).",
        "Unlike the negative pilot study, the full trial in {n} {P} found {O2} {past} with {I}, and the difference "
        "was significant (p = {p}).",
        "Previous null findings notwithstanding, {I} significantly {past} {O2} among {n} {P} (p = {p})."],
    ("refutes", "hard"): [
        "{I} improved {S} (p = {p}) but had no significant effect on {O2} (p = {p_null}) in {n} {P}.",
        "In {n} {P}, {I} brought a significant change in {S} (p = {p}); {O2}, however, did not differ from control "
        "(p = {p_null}).",
        "While {S} responded significantly to {I} (p = {p}), {O2} was unchanged among the {n} {P} studied "
        "(p = {p_null}).",
        "The trial of {n} {P} met a secondary endpoint, {S} (p = {p}), yet {I} left {O2} no different from control "
        "(p = {p_null}).",
        "{I} produced a significant shift in {S} (p = {p}) in {n} {P}, whereas its effect on {O2} was not "
        "significant (p = {p_null})."],
    ("not_enough_info", "hard"): [
        "In a trial of {n} {Q}, {I} significantly {past} {O} (p = {p}).",
        "{I} significantly {past} {O} when tested in {n} {Q} (p = {p}).",
        "Among {n} {Q} randomized to {I}, {O} was significantly {past} (p = {p}).",
        "A study that recruited only {Q} (n = {n}) showed that {I} significantly {past} {O} (p = {p}).",
        "Working with {n} {Q}, investigators found {I} significantly {past} {O}, p = {p}."],
}
WHY = {
    "supports": "the study population matches and {O} changed in the claimed direction significantly.",
    "refutes": "in the claimed population the effect on {O} was absent or opposite.",
    "not_enough_info": "the study did not test {O} in {P}.",
}


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    verdict = rng.choice(VERDICTS)
    study = rng.choice(for_split(STUDIES, split))
    claim = sentence_case(render(rng, rng.choice(for_split(CLAIMS, split)), I=study.intervention, verb=study.verb,
                                 past=PAST[study.verb], O=study.outcome, P=study.population))
    effect, null_effect = rng.randint(8, 30), rng.randint(1, 3)
    slots = {"I": study.intervention, "O": study.outcome, "O2": study.outcome_paraphrase, "P": study.population,
             "Q": study.other_population, "S": study.secondary, "verb": study.verb, "past": PAST[study.verb],
             "noun": NOUN[study.verb], "compared": COMPARED[study.verb], "opposite": study.opposite,
             "n": rng.randint(4, 250) * 10, "p": rng.choice(for_split(P_SIGNIFICANT, split)),
             "p_null": rng.choice(for_split(P_NULL, split)), "months": rng.choice([6, 12, 18, 24]),
             # Confidence intervals that contain their estimate; the null one also contains zero.
             "effect": effect, "lo": effect - rng.randint(2, 6), "hi": effect + rng.randint(2, 6),
             "null_effect": null_effect, "null_lo": rng.randint(2, 6), "null_hi": null_effect + rng.randint(2, 6)}
    templates = EVIDENCE[(verdict, difficulty)]
    template = rng.choice(for_split(templates, split))
    evidence = sentence_case(render(rng, template, **slots))
    return {"claim": claim, "evidence": evidence, "verdict": verdict,
            "family": f"{verdict}/{difficulty}/t{templates.index(template)}",
            "explanation": WHY[verdict].format(**slots)}


DOMAIN = Domain(
    name="research",
    program=ClaimVerifier,
    metric=label_metric("verdict"),
    data=lambda: generate_splits("research", make_item, inputs=("claim", "evidence"), n=DEFAULT_ITEMS),
    task="classification",
    description="Claim verification: does a study finding support, refute, or not address a health-research claim?",
    input_fields=("claim", "evidence"),
    label_fields=("verdict",),
)
