"""Education: may this student enrol? The prerequisite check of a course-catalog entry.

What an academic advisor checks before approving an enrolment: the entry's prerequisite against
the courses the student has completed. Easy entries say "Prerequisite: X" and the record is
short; medium ones phrase the requirement in a sentence; hard ones add recommended courses,
co-requisites, exclusions and old numbers as decoys that the record may hold instead of the
prerequisite, or say there is no prerequisite while recommending one, or exclude a course the
student holds (which makes the student not eligible even when the prerequisite is met) or one the
student does not hold (which changes nothing).

Each split has its own courses and wordings (`for_split`), so test entries are phrased in ways
training never saw.
"""

from __future__ import annotations

import random
from typing import Literal

import dspy

from ax.programs.domain import Domain
from ax.programs.generation import DEFAULT_ITEMS, for_split, generate_splits, render
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
COURSES = [(department, title, topic) for department, entries in DEPARTMENTS.items() for title, topic in entries]
PLAIN = ["Prerequisite: {pre}.", "Prerequisites: {pre}.", "Prereq - {pre}.", "Required prior course: {pre}.",
         "Entry requirement: {pre}."]
SENTENCE = ["Students must have completed {pre} [with a grade of C or better|] before enrolling.",
            "Requires prior completion of {pre}.", "Open to students who have passed {pre}.",
            "You can only register once {pre} is on your transcript.", "Enrolment is limited to those with credit in {pre}."]
NO_PREREQUISITE = {"easy": ["Prerequisite: none.", "Prerequisites: none.", "Prereq - none.", "Required prior course: none.",
                            "Entry requirement: none."],
                   "medium": ["Open to all students; no prior coursework is required.", "Anyone may enrol; there are no entry requirements.",
                              "No earlier course is needed to take this one.", "This course assumes no previous study in the subject.",
                              "All students are welcome regardless of background."],
                   "hard": ["There is no formal prerequisite, although {rec} is strongly recommended.",
                            "No prerequisites. Corequisite: {co}.", "Nothing is required beforehand; {rec} helps but is optional.",
                            "Formally open to all, though most students have seen {rec}.",
                            "No prerequisite applies. Students often pair it with {co}."]}
# The exclusion clause: a student with credit for {excl} may not enrol, prerequisite or not.
EXCLUSIONS = ["Not open to students with credit for {excl}.", "Credit is not given for both this course and {excl}.",
              "Students who have passed {excl} may not enrol.", "Excluded: {excl}.", "Closed to anyone already holding {excl}."]
DECOYS = ["Recommended: {rec}.", "Corequisite: {co}.", "Formerly listed as {old}.",
          "Students who took {rec} may find the first weeks familiar.", "Suggested background: {rec}.",
          "Take alongside {co}.", "Previously numbered {old}.", "Helpful preparation: {rec}.",
          "Must be taken together with {co}.", "Old catalog code: {old}."]
HEADERS = ["{course} [-|:] {title}. [Covers|An introduction to|Topics include] {topic}.[ 4 credits.| 3 credits.|]",
           "{title} ({course}): {topic}.", "Course {course}, {title} - {topic}[, 3 units|, 4 units].",
           "{course} {title}. This course studies {topic}.", "{title}, listed as {course}, on {topic}."]
RECORDS = ["[Completed|Transcript|Courses passed]: {courses}.", "Passed so far: {courses}.", "Student record - {courses}.",
           "Credits earned in {courses}.", "Finished courses: {courses}."]
# Hard cases and their weights. "exclusion not held" pairs the clause with a record that has the
# prerequisite but not the excluded course, so the clause alone does not give the answer away.
HARD_CASES = {"decoys": 2, "no prerequisite": 1, "excluded, no prerequisite": 2, "excluded despite prerequisite": 3,
              "exclusion not held": 3}


def _code(rng: random.Random, department: str, low: int, high: int) -> str:
    return f"{department} {rng.randint(low, high)}{rng.randint(0, 9)}{rng.randint(0, 9)}"


def make_item(rng: random.Random, difficulty: str, split: str) -> dict:
    department, title, topic = rng.choice(for_split(COURSES, split))
    course = _code(rng, department, 3, 4)
    prerequisite = _code(rng, rng.choice([department, department, "MATH"]), 1, 2)
    recommended = prerequisite
    while recommended == prerequisite:  # decoys at levels 3-4 or with an "L" suffix cannot collide
        recommended = _code(rng, rng.choice(list(DEPARTMENTS)), 1, 3)
    excluded = course
    while excluded == course:  # a course cannot exclude itself
        excluded = _code(rng, department, 3, 4)
    slots = {"pre": prerequisite, "rec": recommended, "co": f"{_code(rng, department, 2, 3)}L",
             "excl": excluded, "old": _code(rng, department, 3, 4)}
    header_template = rng.choice(for_split(HEADERS, split))
    header = render(rng, header_template, course=course, title=title, topic=topic)
    fillers = [_code(rng, rng.choice(list(DEPARTMENTS)), 1, 2) for _ in range({"easy": 1, "medium": 2, "hard": 3}[difficulty])]
    fillers = [code for code in fillers if code not in (prerequisite, recommended)]

    def pick(pool: list[str]) -> tuple[str, int]:
        template = rng.choice(for_split(pool, split))
        return template, pool.index(template)

    # Hard items: an exclusion clause in most of them (the case is decided here, not read back from the text).
    if difficulty == "hard":
        case = rng.choices(list(HARD_CASES), weights=list(HARD_CASES.values()))[0]
    else:
        case = rng.choice(["prerequisite"] * 4 + ["no prerequisite"])
    eligible = rng.random() < 0.5
    if case == "no prerequisite":
        template, index = pick(NO_PREREQUISITE[difficulty])
        requirement = render(rng, template, **slots)
        held, eligible = ([recommended] if difficulty == "hard" else []), True
        why = "the entry has no prerequisite; recommended courses and co-requisites do not count."
    elif case.startswith("excluded"):
        template, index = pick(EXCLUSIONS)
        exclusion = render(rng, template, **slots)
        if case == "excluded, no prerequisite":
            requirement, held = f"{render(rng, pick(NO_PREREQUISITE['hard'])[0], **slots)} {exclusion}", [slots["excl"]]
        else:
            requirement = f"{render(rng, pick(PLAIN + SENTENCE)[0], **slots)} {exclusion}"
            held = [prerequisite, slots["excl"]]
        eligible = False
        why = (f"the entry excludes students with credit for {slots['excl']}, which the student has"
               + (", even though the prerequisite is met." if prerequisite in held else "."))
    elif case == "exclusion not held":
        template, index = pick(EXCLUSIONS)
        requirement = f"{render(rng, pick(PLAIN + SENTENCE)[0], **slots)} {render(rng, template, **slots)}"
        held, eligible = [prerequisite], True
        why = (f"the student has completed the prerequisite {prerequisite} and not the excluded course {slots['excl']}, "
               "so the exclusion does not apply.")
    elif case == "decoys":
        template, index = pick(PLAIN + SENTENCE)
        parts = [template, *rng.sample(for_split(DECOYS, split), 2)]
        rng.shuffle(parts)
        requirement = render(rng, " ".join(parts), **slots)
        decoys = [slots[key] for key in ("rec", "co", "old") if slots[key] in requirement]
        held = [prerequisite] if eligible else decoys[:1]
        why = (f"the student has completed the prerequisite {prerequisite}." if eligible else
               f"the prerequisite is {prerequisite}, which the student has not completed"
               + (f"; {decoys[0]} is not the prerequisite." if decoys else "."))
    else:
        template, index = pick(PLAIN if difficulty == "easy" else SENTENCE)
        requirement = render(rng, template, **slots)
        held = [prerequisite] if eligible else []
        why = (f"the student has completed the prerequisite {prerequisite}." if eligible else
               f"the prerequisite is {prerequisite}, which the student has not completed.")
    courses = held + fillers
    rng.shuffle(courses)
    record = render(rng, rng.choice(for_split(RECORDS, split)), courses=", ".join(courses) or "none yet")
    return {"course_description": f"{header} {requirement}", "completed_courses": record,
            "decision": "eligible" if eligible else "not eligible", "explanation": why,
            "family": f"{case}/{difficulty}/t{index}/h{HEADERS.index(header_template)}"}


DOMAIN = Domain(
    name="education",
    program=EnrolmentCheck,
    metric=label_metric("decision"),
    data=lambda: generate_splits("education", make_item, inputs=("course_description", "completed_courses")),
    task="classification",
    description="Enrolment checks: whether a student's completed courses meet a catalog entry's prerequisite.",
    input_fields=("course_description", "completed_courses"),
    label_fields=("decision",),
)
