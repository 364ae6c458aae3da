"""A GEPA instruction proposer that a 135M reflection model can drive.

GEPA's own proposer asks the reflection model to rewrite the whole instruction from the
failures; a model of a few hundred million parameters rarely writes a usable one, so every
proposal is empty or worse and GEPA accepts nothing. This proposer grounds each proposal in
what GEPA hands it, the reflective dataset (each failing input, the program's output and the
metric's feedback, which names the gold answer and the cue that decides it):

- a worked example per failure: the input, shortened, and the gold answer;
- the feedback's "Why:" clause as a rule, where the metric gives one;
- one short lesson the reflection model writes into a one-sentence field (kept only when it
  reads as a sentence and says something new).

New lines are appended to the current instruction, lines it already holds are skipped, and the
added text stays within a word budget (the oldest added lines give way first), so a proposal
always differs from its parent when there is a failure to learn from. GEPA then decides as
usual: the child is kept only if it scores better on the minibatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dspy

ADDED_MARK = "- "  # every line this proposer adds starts so; those lines give way first to the budget
MAX_ADDED_WORDS = 160
EXAMPLE_WORDS = 24  # an input is shortened to this many words in a worked example
_EXPECTED = re.compile(r"expected (.+?)(?:, got |; |\.\s|\.?$)")
_WHY = re.compile(r"Why: (.+)$", re.S)


class WriteLesson(dspy.Signature):
    """Read the mistakes and write one short rule that would have prevented them."""

    mistakes: str = dspy.InputField(desc="inputs the program got wrong, with the right answers")
    lesson: str = dspy.OutputField(desc="one sentence, at most 25 words")


def _words(text: str) -> list[str]:
    return str(text).split()


def _shorten(text: str, limit: int = EXAMPLE_WORDS) -> str:
    words = _words(text)
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def _normalized(line: str) -> str:
    return re.sub(r"\W+", " ", line.casefold()).strip()


def failures(examples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The reflective examples the metric did not call correct."""
    return [e for e in examples if not str(e.get("Feedback", "")).lstrip().startswith("Correct")]


def grounded_lines(example: Mapping[str, Any]) -> list[str]:
    """A worked example (input -> gold answer) and the feedback's rule, from one failing example."""
    feedback = str(example.get("Feedback", ""))
    inputs = example.get("Inputs", {})
    shown = "; ".join(f"{name}: {_shorten(value)}" for name, value in inputs.items()
                      if name != "context" and str(value).strip())
    lines = []
    expected = _EXPECTED.search(feedback)
    if expected and shown:
        lines.append(f"{ADDED_MARK}Example: {shown} -> answer {expected.group(1).strip()}")
    why = _WHY.search(feedback)
    if why:
        lines.append(f"{ADDED_MARK}Rule: {why.group(1).strip()}")
    return lines


def usable_lesson(text: Any) -> str | None:
    """The reflection model's lesson when it reads as one plain sentence, else None."""
    text = " ".join(str(text or "").split())
    words = _words(text)
    if not 4 <= len(words) <= 40 or not re.search(r"[A-Za-z]{3}", text):
        return None
    if any(marker in text for marker in ("[[", "##", "{", "}", "```", "def ", "import ")):
        return None
    distinct = len({w.casefold() for w in words})
    return text if distinct >= len(words) / 2 else None  # loops such as "the the the ..." are not lessons


def merge(instruction: str, new_lines: Sequence[str], *, max_added_words: int = MAX_ADDED_WORDS) -> str:
    """`instruction` with `new_lines` appended (those it already holds skipped), the added lines in budget."""
    lines = instruction.rstrip().splitlines()
    known = {_normalized(line) for line in lines}
    for line in new_lines:
        if _normalized(line) not in known:
            lines.append(line)
            known.add(_normalized(line))
    added = [i for i, line in enumerate(lines) if line.startswith(ADDED_MARK)]
    while added and sum(len(_words(lines[i])) for i in added) > max_added_words:
        del lines[added.pop(0)]  # the oldest added line gives way
        added = [i for i, line in enumerate(lines) if line.startswith(ADDED_MARK)]
    return "\n".join(lines)


class GroundedProposer:
    """A `dspy.GEPA(instruction_proposer=...)` that distils failures into lines a small model can't spoil.

    Called by GEPA inside `dspy.context(lm=reflection_lm)`: the lesson comes from that LM.
    `max_failures` bounds the failures one proposal reads (GEPA's minibatches are a few items).
    """

    def __init__(self, *, max_failures: int = 3, max_added_words: int = MAX_ADDED_WORDS, ask_lesson: bool = True):
        self.max_failures, self.max_added_words, self.ask_lesson = max_failures, max_added_words, ask_lesson

    def lesson(self, failed: Sequence[Mapping[str, Any]]) -> str | None:
        mistakes = "\n".join(f"{_shorten(' '.join(map(str, e.get('Inputs', {}).values())))} => "
                             f"{_shorten(e.get('Feedback', ''), 30)}" for e in failed)
        try:
            return usable_lesson(dspy.Predict(WriteLesson)(mistakes=mistakes).lesson)
        except Exception:  # a reflection model that cannot answer leaves the grounded lines to stand alone
            return None

    def __call__(self, candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
                 components_to_update: list[str]) -> dict[str, str]:
        proposals = {}
        for component in components_to_update:
            failed = failures(reflective_dataset.get(component, []))[: self.max_failures]
            if not failed:
                continue
            lines = [line for example in failed for line in grounded_lines(example)]
            lesson = self.lesson(failed) if self.ask_lesson else None
            if lesson:
                lines.append(f"{ADDED_MARK}{lesson}")
            proposals[component] = merge(candidate[component], lines, max_added_words=self.max_added_words)
        return proposals
