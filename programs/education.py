"""Education: may this student enrol? The prerequisite check of a course-catalog entry.

What an academic advisor checks before approving an enrolment: the entry's prerequisite against
the courses the student has completed. Easy entries say "Prerequisite: X" and the record is
short; medium ones phrase the requirement in a sentence; hard ones add recommended courses,
co-requisites, exclusions and old numbers as decoys that the record may hold instead of the
prerequisite, or say there is no prerequisite while recommending one.
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, generate_examples, render
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

Decision = Literal["eligible", "not eligible"]


class CheckEnrolment(dspy.Signature):
    """Decide whether the student may enrol: "eligible" when the student has completed the
    course's prerequisite (or it has none), "not eligible" otherwise. Recommended courses,
    co-requisites and old course numbers are not prerequisites; a course the entry excludes
    ("not open to students with credit for ...") makes the student not eligible."""

    context: str = context_field()
    course_description: str = dspy.InputField(desc="a course-catalog entry")
    completed_courses: str = dspy.InputField(desc="the courses the student has completed")
    decision: Decision = dspy.OutputField()


class EnrolmentCheck(PredictProgram):
    signature = CheckEnrolment


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


def _record(rng: random.Random, required: list[str], fillers: list[str]) -> str:
    courses = required + fillers
    rng.shuffle(courses)
    return render(rng, "[Completed|Transcript|Courses passed]: {courses}.", courses=", ".join(courses))


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
    fillers = [_code(rng, rng.choice(list(DEPARTMENTS)), 1, 2) for _ in range({"easy": 1, "medium": 2, "hard": 3}[difficulty])]
    fillers = [code for code in fillers if code not in (prerequisite, recommended)]
    has_prerequisite = rng.random() < 0.7
    eligible = rng.random() < 0.5
    if not has_prerequisite:
        requirement = render(rng, rng.choice(NO_PREREQUISITE[difficulty]), **slots)
        excluded = difficulty == "hard" and not eligible and "{excl}" in requirement
        held = [slots["excl"]] if excluded else ([recommended] if difficulty == "hard" else [])
        eligible = not excluded
        why = (f"the entry excludes students with credit for {slots['excl']}, which the student has." if excluded
               else "the entry has no prerequisite; recommended courses and co-requisites do not count.")
    else:
        if difficulty == "hard":
            parts = [rng.choice(PLAIN + SENTENCE), *rng.sample(DECOYS, 2)]
            rng.shuffle(parts)
            requirement = render(rng, " ".join(parts), **slots)
        else:
            requirement = render(rng, rng.choice(PLAIN if difficulty == "easy" else SENTENCE), **slots)
        decoys = [slots[key] for key in ("rec", "co", "old") if slots[key] in requirement]
        held = [prerequisite] if eligible else decoys[:1]
        why = (f"the student has completed the prerequisite {prerequisite}." if eligible else
               f"the prerequisite is {prerequisite}, which the student has not completed"
               + (f"; {decoys[0]} is not the prerequisite." if decoys else "."))
    decision = "eligible" if eligible else "not eligible"
    return {"course_description": f"{header} {requirement}", "completed_courses": _record(rng, held, fillers),
            "decision": decision, "explanation": why}


DOMAIN = Domain(
    name="education",
    program=EnrolmentCheck,
    metric=label_metric("decision"),
    data=lambda: generate_examples("education", make_item, inputs=("course_description", "completed_courses"),
                                   n=DEFAULT_ITEMS),
    task="classification",
    description="Enrolment checks: whether a student's completed courses meet a catalog entry's prerequisite.",
    input_fields=("course_description", "completed_courses"),
    label_fields=("decision",),
)
