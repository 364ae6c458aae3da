"""The playbook: a domain's itemized, versioned lessons, rendered into prompts ACE-style.

Bullets keep stable ids (`str-00001`; numbers are never reused) so that outputs can cite
them, counters can accumulate evidence on them, and deltas can target them across runs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

from ax.context.deltas import AddOp, DeltaOp, apply_deltas, parse_operations
from ax.errors import AxError

DEFAULT_SECTIONS: dict[str, str] = {
    "strategies": "str",
    "formulas": "frm",
    "pitfalls": "pit",
    "domain_facts": "fct",
    "others": "oth",
}
"""Section name -> id prefix. Other sections get the first three letters of their name."""

BULLET_ID = re.compile(r"\b[a-z][a-z0-9]{1,7}-\d{5,}\b")


def section_prefix(section: str) -> str:
    letters = re.sub(r"[^a-z]", "", section)[:3]
    return DEFAULT_SECTIONS.get(section) or (letters if len(letters) >= 2 else "sec")


class Bullet(BaseModel):
    id: str
    section: str
    content: str
    helpful: int = 0
    harmful: int = 0
    provenance: list[str] = []  # the tasks / runs that wrote or merged into this bullet
    created_version: int
    updated_version: int

    def render(self) -> str:
        return f"[{self.id}] helpful={self.helpful} harmful={self.harmful} :: {self.content}"


class AppliedDelta(BaseModel):
    """One history entry: the operations that produced `version`."""

    version: int
    source: str
    operations: list[DeltaOp]
    skipped: int = 0
    time: str


class Playbook(BaseModel):
    domain: str
    version: int = 0
    next_id: int = 1
    bullets: list[Bullet] = []
    history: list[AppliedDelta] = Field(default_factory=list)

    @classmethod
    def from_text(cls, domain: str, text: str, *, source: str) -> Playbook:
        """A new playbook from written lessons, one `ADD | <section> | <lesson>` line each (the
        curator's format, so seeds and learned bullets go through the same merge); `#` lines are
        comments. Anything else is an error: a seed typed by a person should fail loudly, not
        lose a lesson the way a model's malformed line is dropped."""
        parsed = parse_operations("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
        wrong = parsed.malformed + [f"{op.op.upper()} {op.bullet_id}" for op in parsed.operations
                                    if not isinstance(op, AddOp)]
        if wrong:
            raise AxError(f"playbook seed for {domain!r}: only `ADD | <section> | <lesson>` lines are allowed, "
                          f"got {wrong}")
        playbook = cls(domain=domain)
        apply_deltas(playbook, parsed.operations, source=source)
        return playbook

    def get(self, bullet_id: str) -> Bullet | None:
        return next((b for b in self.bullets if b.id == bullet_id), None)

    def sections(self) -> list[str]:
        """Section names in order of first appearance."""
        return list(dict.fromkeys(b.section for b in self.bullets))

    def new_bullet(self, section: str, content: str, *, provenance: str, version: int) -> Bullet:
        """Append a bullet with the next id; only `apply_deltas` should call this."""
        bullet = Bullet(id=f"{section_prefix(section)}-{self.next_id:05d}", section=section, content=content,
                        provenance=[provenance], created_version=version, updated_version=version)
        self.next_id += 1
        self.bullets.append(bullet)
        return bullet

    def remove(self, bullet_id: str) -> None:
        self.bullets = [b for b in self.bullets if b.id != bullet_id]

    def record(self, operations: list[DeltaOp], *, source: str, skipped: int) -> None:
        """Bump the version and log the operations that were applied for it."""
        self.version += 1
        self.history.append(AppliedDelta(
            version=self.version, source=source, operations=operations, skipped=skipped,
            time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ))

    def render(self, bullets: Iterable[Bullet] | None = None) -> str:
        """Prompt text, grouped by section in playbook order; `bullets` picks a subset."""
        return render_bullets(self.bullets if bullets is None else bullets)


def render_bullets(bullets: Iterable[Bullet]) -> str:
    """`## section` headers, then one `[id] helpful=h harmful=x :: content` line per bullet."""
    by_section: dict[str, list[str]] = {}
    for bullet in bullets:
        by_section.setdefault(bullet.section, []).append(bullet.render())
    return "\n\n".join(f"## {section}\n" + "\n".join(lines) for section, lines in by_section.items())
