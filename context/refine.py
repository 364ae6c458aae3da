"""Grow-and-refine: keep the playbook from bloating as deltas pile up.

The ACE reference code ships with de-duplication off and no size bound; its users report
playbooks past 100K tokens and most bullets never used. Here every refinement pass merges
near-duplicates, prunes bullets the evidence says mislead, and enforces a size cap by dropping
the least useful, all as ordinary delta operations so the history shows what went and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from ax.context.deltas import ApplyReport, DeltaOp, MergeOp, RemoveOp, apply_deltas
from ax.context.playbook import Bullet, Playbook
from ax.context.retrieval import words
from ax.context.tokens import TokenCounter, token_counter

Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


class RefinePolicy(BaseModel):
    similarity_threshold: float = Field(default=0.8, gt=0, le=1)
    """Bullets of one section at least this similar are merged. 0.8 suits the default token
    Jaccard; with an embedding function, cosine thresholds near 0.9 are typical."""
    min_evidence: int = Field(default=3, ge=1)
    """A bullet is judged only after this many helpful + harmful votes."""
    harm_margin: int = Field(default=1, ge=1)
    """...and pruned when harmful - helpful reaches this margin."""
    max_bullets: int | None = Field(default=200, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    """Cap on the rendered playbook, counted with the refiner's tokenizer."""


def lexical_similarity(a: str, b: str) -> float:
    """Jaccard overlap of word sets: 1.0 for the same words in any order."""
    left, right = set(words(a)), set(words(b))
    return len(left & right) / len(left | right) if left or right else 1.0


def _cosine(u: Sequence[float], v: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
    return sum(x * y for x, y in zip(u, v)) / norm if norm else 0.0


def usefulness(bullet: Bullet) -> tuple[int, int]:
    """Sort key, least useful first: net evidence, then staleness (oldest update first)."""
    return bullet.helpful - bullet.harmful, bullet.updated_version


class Refiner:
    """Plans and applies merge / prune / cap operations under a `RefinePolicy`.

    `embed` (texts -> vectors) replaces lexical similarity with cosine similarity; vectors are
    cached per bullet text. `tokenizer` counts tokens for `max_tokens` (see `token_counter`)."""

    def __init__(self, policy: RefinePolicy | None = None, *, embed: Embed | None = None, tokenizer=None):
        self.policy = policy or RefinePolicy()
        self.embed = embed
        self.count_tokens: TokenCounter = token_counter(tokenizer)
        self._vectors: dict[str, Sequence[float]] = {}

    def __call__(self, playbook: Playbook, *, source: str = "refine") -> ApplyReport:
        return apply_deltas(playbook, self.plan(playbook), source=source)

    def plan(self, playbook: Playbook) -> list[DeltaOp]:
        """The operations a refinement would apply, worked out on a copy (merges change the
        counters that pruning and the cap then look at)."""
        draft = playbook.model_copy(deep=True)
        operations: list[DeltaOp] = []
        for stage in (self._merges, self._prunes, self._drops):
            ops = stage(draft)
            apply_deltas(draft, ops, source="plan")
            operations.extend(ops)
        return operations

    def similarity(self, a: str, b: str) -> float:
        """Lexical by default; cosine of cached embeddings once `_embed_all` has seen both."""
        if self.embed is None:
            return lexical_similarity(a, b)
        return _cosine(self._vectors[a], self._vectors[b])

    def _embed_all(self, texts: list[str]) -> None:
        """One batched embedding call for texts not seen before; forget texts that are gone."""
        self._vectors = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.embed(missing)))

    def _merges(self, playbook: Playbook) -> list[DeltaOp]:
        """Each bullet merges into the first earlier kept bullet of its section it resembles."""
        if self.embed is not None:
            self._embed_all([b.content for b in playbook.bullets])
        kept: dict[str, list[Bullet]] = {}
        operations: list[DeltaOp] = []
        for bullet in playbook.bullets:
            keepers = kept.setdefault(bullet.section, [])
            target = next((k for k in keepers if self.similarity(k.content, bullet.content)
                           >= self.policy.similarity_threshold), None)
            if target is None:
                keepers.append(bullet)
            else:
                operations.append(MergeOp(bullet_id=target.id, merged_id=bullet.id))
        return operations

    def _prunes(self, playbook: Playbook) -> list[DeltaOp]:
        p = self.policy
        return [RemoveOp(bullet_id=b.id) for b in playbook.bullets
                if b.helpful + b.harmful >= p.min_evidence and b.harmful - b.helpful >= p.harm_margin]

    def _drops(self, playbook: Playbook) -> list[DeltaOp]:
        """Drop least useful bullets until both caps hold."""
        p = self.policy
        remaining = list(playbook.bullets)
        order = sorted(remaining, key=usefulness)
        dropped: list[DeltaOp] = []
        while order and (
            (p.max_bullets is not None and len(remaining) > p.max_bullets)
            or (p.max_tokens is not None and self.count_tokens(playbook.render(remaining)) > p.max_tokens)
        ):
            victim = order.pop(0)
            remaining.remove(victim)
            dropped.append(RemoveOp(bullet_id=victim.id))
        return dropped
