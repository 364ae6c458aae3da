"""Education: the prerequisite course named in a course-catalog entry.

What an academic advisor checks before approving an enrolment. Easy entries say
"Prerequisite: X"; medium ones phrase it in a sentence; hard ones add recommended courses,
co-requisites and exclusions as decoys, or say there is no prerequisite while recommending one.
"""

from __future__ import annotations

import random

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import text_metric
from ax.programs.modules import PredictProgram, context_field

NONE = "none"


class FindPrerequisite(dspy.Signature):
    """Give the course code a student must already have completed to enroll (e.g. "MATH 101"),
    or "none" if the entry requires no prior course. Recommended courses, co-requisites and
    exclusions are not prerequisites."""

    context: str = context_field()
    course_description: str = dspy.InputField(desc="a course-catalog entry")
    prerequisite: str = dspy.OutputField(desc='a course code such as "STAT 200", or "none"')


class PrerequisiteFinder(PredictProgram):
    signature = FindPrerequisite


# department -> (course title, what it covers)
DEPARTMENTS = {
    "MATH": [("Linear Algebra", "vector spaces and linear maps"), ("Real Analysis", "limits, continuity and sequences"),
             ("Differential Equations", "first-order and linear systems")],
    "STAT": [("Regression Analysis", "linear models and diagnostics"), ("Bayesian Inference", "priors, posteriors and sampling"),
             ("Experimental Design", "randomized and blocked designs")],
    "CS": [("Data Structures", "lists, trees and hash tables"), ("Operating Systems", "processes, memory and scheduling"),
           ("Databases", "relational models and SQL")],
    "ECON": [("Intermediate Microeconomics", "consumer and firm behaviour"),
             ("Econometrics", "causal estimation with observational data"), ("Public Finance", "taxation and public goods")],
    "BIO": [("Genetics", "inheritance and gene expression"), ("Cell Biology", "organelles and signalling"),
            ("Ecology", "populations and ecosystems")],
    "CHEM": [("Organic Chemistry", "reaction mechanisms and synthesis"), ("Physical Chemistry", "thermodynamics and kinetics"),
             ("Biochemistry", "enzymes and metabolism")],
    "PSYC": [("Cognitive Psychology", "memory, attention and perception"), ("Research Methods", "study design and ethics"),
             ("Developmental Psychology", "change across the lifespan")],
    "HIST": [("Modern Europe", "revolutions and nation states"), ("The Atlantic World", "empire, trade and migration"),
             ("History of Science", "ideas and institutions")],
}
PLAIN = ["Prerequisite: {pre}.", "Prerequisites: {pre}."]
SENTENCE = ["Students must have completed {pre} [with a grade of C or better|] before enrolling.",
            "Requires prior completion of {pre}.", "Open to students who have passed {pre}."]
NO_PREREQUISITE = {"easy": ["Prerequisite: none."], "medium": ["Open to all students; no prior coursework is required."],
                   "hard": ["There is no formal prerequisite, although {rec} is strongly recommended.",
                            "No prerequisites. Corequisite: {co}. Credit is not given for both this course and {excl}."]}
DECOYS = ["Recommended: {rec}.", "Corequisite: {co}.", "Not open to students with credit for {excl}.",
          "Formerly listed as {old}.", "Students who took {rec} may find the first weeks familiar."]


def _code(rng: random.Random, department: str, low: int, high: int) -> str:
    return f"{department} {rng.randint(low, high)}{rng.randint(0, 9)}{rng.randint(0, 9)}"


def make_item(rng: random.Random, difficulty: str) -> dict:
    department = rng.choice(list(DEPARTMENTS))
    title, topic = rng.choice(DEPARTMENTS[department])
    course = _code(rng, department, 3, 4)
    prerequisite = _code(rng, rng.choice([department, department, "MATH"]), 1, 2)
    recommended = prerequisite
    while recommended == prerequisite:  # decoys at levels 3-4 or with an "L" suffix cannot collide
        recommended = _code(rng, rng.choice(list(DEPARTMENTS)), 1, 3)
    slots = {"pre": prerequisite, "rec": recommended, "co": f"{_code(rng, department, 2, 3)}L",
             "excl": _code(rng, department, 3, 4), "old": _code(rng, department, 3, 4)}
    header = render(rng, "{course} [-|:] {title}. [Covers|An introduction to|Topics include] {topic}.[ 4 credits.| 3 credits.|]",
                    course=course, title=title, topic=topic)
    has_prerequisite = rng.random() < 0.75
    if not has_prerequisite:
        requirement = render(rng, rng.choice(NO_PREREQUISITE[difficulty]), **slots)
        why = "the entry states there is no prerequisite; recommended courses and co-requisites do not count."
    elif difficulty == "hard":
        decoys = rng.sample(DECOYS, 2)
        parts = [rng.choice(PLAIN + SENTENCE), *decoys]
        rng.shuffle(parts)
        requirement = render(rng, " ".join(parts), **slots)
        why = f"{prerequisite} is the required course; the other codes are recommended, co-requisite, excluded or old numbers."
    else:
        requirement = render(rng, rng.choice(PLAIN if difficulty == "easy" else SENTENCE), **slots)
        why = f"the entry requires {prerequisite}."
    answer = prerequisite if has_prerequisite else NONE
    return {"course_description": f"{header} {requirement}", "prerequisite": answer, "explanation": why}


DOMAIN = Domain(
    name="education",
    program=PrerequisiteFinder,
    metric=text_metric("prerequisite"),
    data=lambda: generate_examples("education", make_item, inputs=("course_description",), n=DEFAULT_ITEMS),
    task="extraction",
    description="Course-catalog parsing: the prerequisite course code of a catalog entry, or 'none'.",
    input_fields=("course_description",),
    label_fields=("prerequisite",),
)
