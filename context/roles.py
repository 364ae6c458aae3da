"""ACE's three roles around a playbook.

Generator: the domain program itself. It sees bullets as `[str-00001] ... :: text` in its
`context` input and is asked to cite the ids it relies on; `cited_bullet_ids` recovers them
from its output. Reflector: diagnoses one attempt against the metric's gold/feedback and
tags the bullets shown. Curator: turns a reflection into delta lines for `apply_deltas`.

Both LM roles run on the LM configured in dspy unless given their own (`lm=`: a dspy LM or a
litellm model string), so a strong remote model can teach a small local one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import dspy

from ax.context.deltas import parse_operations
from ax.context.playbook import BULLET_ID, DEFAULT_SECTIONS, Bullet, Playbook, render_bullets
from ax.context.retrieval import BM25

Tag = Literal["helpful", "harmful", "neutral"]
_TAG = re.compile(r"\b(helpful|harmful|neutral)\b")
# DSPy's format template as a small model copies it: `{field}`, `[field]`, `[[ ## field ## ]]`, `#`.
_TEMPLATE_PIECE = re.compile(r"\{\w+\}|\[\[?\s*#*\s*\w*\s*#*\s*\]?\]|#+")


def _echoes_template(text: str) -> bool:
    """True for a value like `{urgency}` or `# [key_insight] # [key_insight]`: SmolLM2-135M copies
    the placeholders and markers of DSPy's format template instead of answering, and such a value
    must not reach the playbook as a lesson."""
    return bool(text.strip()) and not re.search(r"\w", _TEMPLATE_PIECE.sub("", text))


def cited_bullet_ids(output: Any, known: Collection[str] | None = None) -> list[str]:
    """Bullet ids mentioned in a program's output (a string, a `dspy.Prediction` or a mapping:
    all string fields, reasoning included), in order of first mention; only `known` ids if given."""
    if isinstance(output, dspy.Prediction):
        output = output.toDict()
    texts = [str(v) for v in output.values()] if isinstance(output, Mapping) else [str(output)]
    found = dict.fromkeys(m.group(0) for text in texts for m in BULLET_ID.finditer(text))
    return [i for i in found if known is None or i in known]


def parse_bullet_tags(text: str, shown: Collection[str]) -> tuple[dict[str, Tag], list[str]]:
    """`str-00001: helpful` lines -> {id: tag}, plus the lines that named no shown id or no tag."""
    tags: dict[str, Tag] = {}
    malformed: list[str] = []
    for line in (line.strip() for line in text.splitlines()):
        if not line or line.lower().rstrip(".") in {"none", "n/a"}:
            continue
        ids = [m.group(0) for m in BULLET_ID.finditer(line)]
        tag = _TAG.search(line.lower())
        if len(ids) != 1 or ids[0] not in shown or tag is None:
            malformed.append(line)
        else:
            tags[ids[0]] = tag.group(1)
    return tags, malformed


def _lm_scope(lm: dspy.BaseLM | None):
    return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()


def _as_lm(lm: dspy.BaseLM | str | None) -> dspy.BaseLM | None:
    return dspy.LM(lm) if isinstance(lm, str) else lm


class ReflectOnAttempt(dspy.Signature):
    """Diagnose one attempt at a domain task. Compare the program output with the gold answer and
    feedback, find the root cause of the error (or what made it right), and state one reusable
    lesson that would help on similar tasks. Tag every playbook bullet listed as used: helpful if
    it pushed toward the right answer, harmful if it misled, neutral otherwise."""

    task_input: str = dspy.InputField()
    program_output: str = dspy.InputField()
    feedback: str = dspy.InputField(desc="gold answer, score and the metric's feedback")
    bullets_used: str = dspy.InputField(desc="playbook bullets the program saw, one per line")
    diagnosis: str = dspy.OutputField(desc="what went right or wrong, and why")
    key_insight: str = dspy.OutputField(desc="one concrete lesson reusable on similar tasks")
    bullet_tags: str = dspy.OutputField(desc="one line per bullet: <bullet id>: helpful, harmful or neutral")


class Reflector(dspy.Module):
    """Returns a Prediction with `diagnosis`, `key_insight`, `tags` ({id: tag}, shown ids only)
    and `malformed` (tag lines that did not parse, texts that only echo the template). An LM
    answer without the output fields, or echoing the template, gives empty texts and the reason
    in `malformed` instead of an exception."""

    def __init__(self, lm: dspy.BaseLM | str | None = None):
        super().__init__()
        self.lm = _as_lm(lm)
        self.reflect = dspy.Predict(ReflectOnAttempt)

    def forward(self, task_input: str, program_output: str, feedback: str, bullets: Sequence[Bullet]):
        try:
            with _lm_scope(self.lm):
                result = self.reflect(task_input=task_input, program_output=program_output, feedback=feedback,
                                      bullets_used=render_bullets(bullets) or "(none)")
        except dspy.AdapterParseError as error:
            return dspy.Prediction(diagnosis="", key_insight="", tags={}, malformed=[str(error)])
        tags, malformed = parse_bullet_tags(result.bullet_tags or "", {b.id for b in bullets})
        texts = {}
        for name in ("diagnosis", "key_insight"):
            value = str(getattr(result, name) or "")
            if _echoes_template(value):
                malformed.append(f"{name} {value.strip()!r} only echoes the format template")
                value = ""
            texts[name] = value
        return dspy.Prediction(**texts, tags=tags, malformed=malformed)


class CurateDeltas(dspy.Signature):
    """Maintain a playbook of reusable lessons for a domain. From the reflection on one task,
    write only the changes to the playbook, one per line, in exactly this format:
    ADD | <section> | <new lesson>
    UPDATE | <bullet id> | <improved text of that bullet>
    REMOVE | <bullet id>
    HELPFUL | <bullet id>
    HARMFUL | <bullet id>
    Add a lesson only if no existing bullet says it; prefer UPDATE to sharpen an existing one.
    Write NONE if nothing should change."""

    task_input: str = dspy.InputField()
    reflection: str = dspy.InputField()
    playbook: str = dspy.InputField(desc="existing bullets related to this task")
    sections: str = dspy.InputField(desc="section names allowed in ADD")
    operations: str = dspy.OutputField(desc="one operation per line")


class Curator(dspy.Module):
    """Returns a Prediction with `operations` (parsed delta ops) and `malformed` (lines skipped;
    an LM answer without the `operations` field counts as one malformed entry).

    Only the `max_bullets_shown` bullets most related to the task and lesson are shown, so the
    prompt stays small for local models while near-duplicates are still visible to UPDATE."""

    def __init__(self, lm: dspy.BaseLM | str | None = None, *, max_bullets_shown: int = 30):
        super().__init__()
        self.lm = _as_lm(lm)
        self.max_bullets_shown = max_bullets_shown
        self.curate = dspy.Predict(CurateDeltas)

    def forward(self, playbook: Playbook, task_input: str, diagnosis: str, key_insight: str):
        sections = list(dict.fromkeys([*DEFAULT_SECTIONS, *playbook.sections()]))
        try:
            with _lm_scope(self.lm):
                result = self.curate(
                    task_input=task_input, reflection=f"diagnosis: {diagnosis}\nkey insight: {key_insight}",
                    playbook=render_bullets(self._related(playbook, f"{task_input}\n{key_insight}")) or "(empty)",
                    sections=", ".join(sections),
                )
        except dspy.AdapterParseError as error:
            return dspy.Prediction(operations=[], malformed=[str(error)])
        parsed = parse_operations(result.operations or "", sections=sections)
        return dspy.Prediction(operations=parsed.operations, malformed=parsed.malformed)

    def _related(self, playbook: Playbook, query: str) -> list[Bullet]:
        """The most related bullets, shown in playbook order."""
        scores = BM25([b.content for b in playbook.bullets]).scores(query)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: self.max_bullets_shown]
        return [playbook.bullets[i] for i in sorted(ranked)]
