"""A GEPA instruction proposer that a 135M reflection model can drive.

GEPA's own proposer asks the reflection model to rewrite the whole instruction from the
failures; a model of a few hundred million parameters rarely writes a usable one, so every
proposal is empty or worse and GEPA accepts nothing. This proposer grounds each proposal in
what GEPA hands it, the reflective dataset (each input, the program's output and the metric's
feedback, which names the gold value of each field and the cue that decides it):

- a worked example per failure: its inputs, shortened, and the gold value of each output field;
- the feedback's "Why:" clause as a rule, where the metric gives one;
- one lesson the reflection model writes into a one-sentence field (kept only when it reads
  as a sentence and says something new).

The new lines go under a header after the current instruction; lines the instruction already
holds are skipped, failures it does not cover yet come first, and the added section stays
within a word budget (its oldest lines give way first). A multi-step program's feedback
(`step_metric`) holds one "Step <name>: ..." part per step, each with its own verdicts and "Why:";
a part is read like a whole feedback of a single-step metric. A component with nothing new to add
gets no proposal, which GEPA skips without spending metric calls; otherwise the child differs
from its parent, and GEPA keeps it only if it scores better on the minibatch, as usual.
Without sampling of its own, a proposal is a function of its inputs and the reflection LM's answer.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

HEADER = "Worked examples and rules from earlier mistakes:"
MAX_ADDED_WORDS = 160  # words stand in for tokens: the budget only has to bound the prompt's growth
EXAMPLE_WORDS = 24  # each input and gold value of a worked example is shortened to this many words
RULE_WORDS = 30
LESSON_TOKENS = 64  # a one-sentence answer; a small model left unbounded rambles to the field's limit
# A gold value in the domain metrics' feedback (programs/metrics.py): "Correct: `f` = V.",
# "Wrong `f`: expected V, got G.", "The prediction has no `f`; expected V.", "`f` = G is not a
# label; expected V." and, among the intermediate values, "f expected V, got G"; V is a repr.
_VALUE = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;]+?)"
_END = r"(?=[,;]|\.?(?:\s|$))"
_GOLD = re.compile(rf"(?:Correct: `(\w+)` = |`(\w+)`[^`]*?expected |(?<![`\w])(\w+) expected ){_VALUE}{_END}")
_ANY_EXPECTED = re.compile(rf"expected {_VALUE}{_END}")  # feedback of other metrics names no field
_WHY = re.compile(r"(?:^|\s)Why: ")
_STEP = re.compile(r"(?:^|(?<=\s))Step [\w.-]+: ")  # step_metric's part of one step (programs/metrics.py)
_NOT_PROSE = ("[[", "##", "{", "}", "`", "=>", "def ", "import ")


class WriteLesson(dspy.Signature):
    """Read the mistakes and write one short rule that would have prevented them."""

    mistakes: str = dspy.InputField(desc="inputs the program got wrong, with the right answers")
    lesson: str = dspy.OutputField(desc="one sentence, at most 25 words")


def _words(text: Any) -> list[str]:
    return str(text).split()


def _shorten(text: Any, limit: int) -> str:
    words = _words(text)
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def _normalized(line: str) -> str:
    return re.sub(r"\W+", " ", line.casefold()).strip()


def _plain(value: str) -> str:
    """A repr'd string value as the model should write it ('billing' -> billing)."""
    if value[:1] in "'\"":
        try:
            return str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            return value.strip("'\"")
    return value


def _parts(example: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(verdicts, why) of each step the feedback speaks of; one part when it does not start with a step.

    The verdicts leave out the "Why:" clause, whose prose may say "expected" too.
    """
    feedback = str(example.get("Feedback", ""))
    starts = list(_STEP.finditer(feedback))
    if not starts or starts[0].start() != 0:
        pieces = [feedback]
    else:
        pieces = [feedback[m.end():end.start() if end else None] for m, end in zip(starts, starts[1:] + [None])]
    parts = []
    for piece in pieces:
        verdicts, *why = _WHY.split(piece, maxsplit=1)
        parts.append((verdicts.strip(), why[0].strip() if why else ""))
    return parts


def _wrong(verdicts: str) -> bool:
    matches = list(_GOLD.finditer(verdicts))
    if matches:  # the domain metrics' form: a field is wrong when its verdict is not "Correct"
        return any(match.group(1) is None for match in matches)
    return not verdicts.startswith("Correct")


def failures(examples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The reflective examples whose feedback finds a field wrong in any step (GEPA hands over no scores)."""
    return [example for example in examples if any(_wrong(verdicts) for verdicts, _ in _parts(example))]


def gold_values(example: Mapping[str, Any]) -> dict[str, str]:
    """Field -> gold value named in the example's feedback, limited to the fields this predictor outputs."""
    feedback = " ".join(verdicts for verdicts, _ in _parts(example))
    outputs = example.get("Generated Outputs")
    own = [name for name in outputs if name != "reasoning"] if isinstance(outputs, Mapping) else []
    gold = {next(g for g in m.groups()[:3] if g): _plain(m.group(4)) for m in _GOLD.finditer(feedback)}
    if not gold and (match := _ANY_EXPECTED.search(feedback)):
        gold = {own[0] if len(own) == 1 else "answer": _plain(match.group(1))}
    mine = {field: value for field, value in gold.items() if field in own}
    return mine or gold  # the feedback may name the program's final fields only, not this predictor's


def _case(example: Mapping[str, Any]) -> dict[str, str]:
    """The example's inputs, shortened; the playbook (`context`) is no part of the case."""
    return {name: _shorten(value, EXAMPLE_WORDS) for name, value in example.get("Inputs", {}).items()
            if name != "context" and str(value).strip()}


def grounded_lines(example: Mapping[str, Any]) -> list[str]:
    """A worked example (inputs -> gold values) and the rules of the wrong steps, from one failing example."""
    shown = "; ".join(f"{name}: {value}" for name, value in _case(example).items())
    gold = gold_values(example)
    lines = []
    if gold and shown:
        lines.append(f"- Example: {shown} -> " + "; ".join(f"{field}: {_shorten(value, EXAMPLE_WORDS)}"
                                                               for field, value in gold.items()))
    rules = dict.fromkeys(why for verdicts, why in _parts(example) if why and _wrong(verdicts))
    lines.extend(f"- Rule: {_shorten(why, RULE_WORDS)}" for why in rules)  # steps share the example's cue
    return lines


def usable_lesson(text: Any) -> str | None:
    """The reflection model's lesson when it reads as one plain sentence, else None."""
    text = " ".join(str(text or "").split())
    words = _words(text)
    if not 4 <= len(words) <= 40 or not re.search(r"[A-Za-z]{3}", text) or any(m in text for m in _NOT_PROSE):
        return None
    distinct = len({w.casefold() for w in words})
    return text if distinct >= len(words) / 2 else None  # loops such as "the the the ..." are not lessons


def _sections(instruction: str) -> tuple[list[str], list[str]]:
    """The instruction's own lines and the lines this proposer added under its header."""
    lines = instruction.rstrip().splitlines()
    if HEADER not in lines:
        return lines, []
    at = lines.index(HEADER)
    return lines[:at], lines[at + 1:]


def new_lines(instruction: str, lines: Sequence[str]) -> list[str]:
    """`lines` the instruction does not hold yet (up to case and punctuation), each once."""
    base, added = _sections(instruction)
    known = {_normalized(line) for line in base + added}
    fresh = []
    for line in lines:
        if _normalized(line) not in known:
            fresh.append(line)
            known.add(_normalized(line))
    return fresh


def merge(instruction: str, lines: Sequence[str], *, max_added_words: int = MAX_ADDED_WORDS) -> str:
    """`instruction` with the new ones of `lines` under the header, the added section within budget."""
    base, added = _sections(instruction)
    added = added + new_lines(instruction, lines)
    while len(added) > 1 and sum(len(_words(line)) for line in added) > max_added_words:
        added.pop(0)  # the oldest added line gives way
    if not added:
        return instruction
    return "\n".join(base).rstrip() + f"\n\n{HEADER}\n" + "\n".join(added)


class GroundedProposer:
    """A `dspy.GEPA(instruction_proposer=...)` that distils failures into lines a small model can't spoil.

    GEPA calls it inside `dspy.context(lm=reflection_lm)`: the lesson comes from that LM.
    `max_failures` bounds the failures one proposal learns from (GEPA's minibatches are a few items).
    """

    def __init__(self, *, max_failures: int = 3, max_added_words: int = MAX_ADDED_WORDS, ask_lesson: bool = True):
        self.max_failures, self.max_added_words, self.ask_lesson = max_failures, max_added_words, ask_lesson

    def lesson(self, failed: Sequence[Mapping[str, Any]]) -> str | None:
        mistakes = "\n".join(f"{_shorten(' '.join(_case(e).values()), EXAMPLE_WORDS)} => "
                             f"{_shorten(e.get('Feedback', ''), RULE_WORDS)}" for e in failed)
        try:
            answer = dspy.Predict(WriteLesson)(mistakes=mistakes, config={"max_tokens": LESSON_TOKENS})
        except AdapterParseError:  # an unparseable answer leaves the grounded lines to stand alone
            return None
        return usable_lesson(answer.lesson)

    def propose(self, instruction: str, examples: Sequence[Mapping[str, Any]]) -> str | None:
        """The new instruction for one component, or None when its failures teach nothing it lacks."""
        failed = failures(examples)
        if not failed:
            return None
        uncovered = [e for e in failed if new_lines(instruction, grounded_lines(e))]
        chosen = (uncovered or failed)[: self.max_failures]
        lines = [line for example in chosen for line in grounded_lines(example)]
        lesson = self.lesson(chosen) if self.ask_lesson else None
        if lesson:
            lines.append(f"- Lesson: {lesson}")
        proposal = merge(instruction, lines, max_added_words=self.max_added_words)
        return proposal if proposal != instruction else None

    def __call__(self, candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
                 components_to_update: list[str]) -> dict[str, str]:
        proposals = {name: self.propose(candidate[name], reflective_dataset.get(name, []))
                     for name in components_to_update}
        return {name: text for name, text in proposals.items() if text is not None}
