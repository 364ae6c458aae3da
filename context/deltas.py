"""Delta operations on a playbook: their types, a forgiving parser, and the deterministic merge.

ACE's key rule: the LM proposes small itemized deltas and plain code applies them, so the
playbook is never rewritten wholesale by a model and cannot collapse into a short summary.
The line format (`ADD | strategies | ...`) is what a 135M-parameter model can still emit;
every line that does not parse is skipped and reported, never raised.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from ax.context.playbook import Playbook


class AddOp(BaseModel):
    """A new bullet in `section` (a new section is created if the playbook has none yet)."""

    op: Literal["add"] = "add"
    section: str
    content: str


class UpdateOp(BaseModel):
    """New text for an existing bullet; its id and counters stay."""

    op: Literal["update"] = "update"
    bullet_id: str
    content: str


class RemoveOp(BaseModel):
    op: Literal["remove"] = "remove"
    bullet_id: str


class CountOp(BaseModel):
    """Evidence from one task: the bullet helped or misled."""

    op: Literal["count"] = "count"
    bullet_id: str
    helpful: int = Field(default=0, ge=0)
    harmful: int = Field(default=0, ge=0)


class MergeOp(BaseModel):
    """Fold a near-duplicate into `bullet_id`: counters and provenance add up, `merged_id` goes."""

    op: Literal["merge"] = "merge"
    bullet_id: str
    merged_id: str


DeltaOp = Annotated[AddOp | UpdateOp | RemoveOp | CountOp | MergeOp, Field(discriminator="op")]


class ParsedOperations(BaseModel):
    operations: list[DeltaOp] = []
    malformed: list[str] = []  # the offending lines, for logs and tests


class ApplyReport(BaseModel):
    """What one `apply_deltas` call did; `skipped` gives a reason per operation not applied."""

    version: int
    applied: int = 0
    skipped: list[str] = []


_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_NOTHING = {"", "none", "no changes", "no operations", "```", "```text"}


def normalize_section(name: str) -> str:
    """`Common Mistakes` -> `common_mistakes`: section names as the models write them vary."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def parse_operations(text: str, *, sections: Collection[str] | None = None) -> ParsedOperations:
    """Parse one operation per line:

        ADD | <section> | <bullet text>
        UPDATE | <bullet id> | <new bullet text>
        REMOVE | <bullet id>
        HELPFUL | <bullet id>
        HARMFUL | <bullet id>

    List markers and `[ ]` around ids are tolerated; with `sections` given, an ADD to any other
    section is malformed (small models invent section names)."""
    parsed = ParsedOperations()
    for raw in text.splitlines():
        line = _LIST_MARKER.sub("", raw).strip()
        if line.lower().rstrip(".") in _NOTHING:
            continue
        op = _parse_line(line, sections)
        if op is None:
            parsed.malformed.append(raw.strip())
        else:
            parsed.operations.append(op)
    return parsed


def _parse_line(line: str, sections: Collection[str] | None) -> DeltaOp | None:
    parts = [part.strip() for part in line.split("|", 2)]
    keyword = parts[0].upper()
    argument = parts[1].strip("[]` ") if len(parts) > 1 else ""
    text = parts[2] if len(parts) > 2 else ""
    if not argument:
        return None
    if keyword == "ADD" and text:
        section = normalize_section(argument)
        if section and (sections is None or section in sections):
            return AddOp(section=section, content=text)
    elif keyword == "UPDATE" and text:
        return UpdateOp(bullet_id=argument, content=text)
    elif keyword == "REMOVE" and len(parts) == 2:
        return RemoveOp(bullet_id=argument)
    elif keyword == "HELPFUL" and len(parts) == 2:
        return CountOp(bullet_id=argument, helpful=1)
    elif keyword == "HARMFUL" and len(parts) == 2:
        return CountOp(bullet_id=argument, harmful=1)
    return None


def apply_deltas(playbook: Playbook, operations: Iterable[DeltaOp], *, source: str) -> ApplyReport:
    """Apply `operations` in order; those naming unknown ids or changing nothing are skipped.

    If anything changed, the playbook's version goes up by one and the applied operations are
    appended to its history under `source` (the task or run that produced them)."""
    version = playbook.version + 1
    applied: list[DeltaOp] = []
    skipped: list[str] = []
    for op in operations:
        reason = _apply_one(playbook, op, version, source)
        if reason is None:
            applied.append(op)
        else:
            skipped.append(f"{op.op} {getattr(op, 'bullet_id', getattr(op, 'section', ''))}: {reason}")
    if applied:
        playbook.record(applied, source=source, skipped=len(skipped))
    return ApplyReport(version=playbook.version, applied=len(applied), skipped=skipped)


def _apply_one(playbook: Playbook, op: DeltaOp, version: int, source: str) -> str | None:
    """Apply one operation; return why it was skipped, or None."""
    if isinstance(op, AddOp):
        content, section = " ".join(op.content.split()), normalize_section(op.section)
        if not content or not section:
            return "empty content or section"
        playbook.new_bullet(section, content, provenance=source, version=version)
        return None
    bullet = playbook.get(op.bullet_id)
    if bullet is None:
        return "unknown bullet id"
    if isinstance(op, UpdateOp):
        content = " ".join(op.content.split())
        if not content or content == bullet.content:
            return "unchanged"
        bullet.content = content
        bullet.provenance.append(source)
    elif isinstance(op, RemoveOp):
        playbook.remove(bullet.id)
        return None
    elif isinstance(op, CountOp):
        if not (op.helpful or op.harmful):
            return "no counts"
        bullet.helpful += op.helpful
        bullet.harmful += op.harmful
    elif isinstance(op, MergeOp):
        merged = playbook.get(op.merged_id)
        if merged is None or merged.id == bullet.id:
            return "unknown or same merged id"
        bullet.helpful += merged.helpful
        bullet.harmful += merged.harmful
        bullet.provenance.extend([*merged.provenance, f"merged {merged.id}"])
        playbook.remove(merged.id)
    bullet.updated_version = version
    return None
