"""Floors a result must beat and how close test items are to training items, with no model.

- majority floor: the share of the most common gold answer among the items scored, i.e. the
  best any constant answer can do there (for extraction and computation domains too);
- chance: one over the number of labels (classification only);
- nearest-neighbour floor: each test item answered with the gold label of the training item
  whose words overlap it most (Jaccard over lower-cased word sets), which is what template
  recall alone achieves;
- closeness: each test item's word overlap with its nearest training item; a set whose test
  items sit at 0.7 and above measures recall of training phrasings, not learning.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Hashable, Sequence
from statistics import median
from typing import Any, Literal

from pydantic import BaseModel

from ax.programs.domain import Domain

NEAR_COPY = 0.7  # word overlap from which a test item counts as a near-copy of a training item
_WORD = re.compile(r"\w+")


def majority_floor(golds: Sequence[Hashable]) -> tuple[Hashable, float]:
    """The most common gold answer and its share: the best accuracy of any constant answer."""
    if not golds:
        raise ValueError("no gold answers")
    value, count = Counter(golds).most_common(1)[0]
    return value, count / len(golds)


def examples_majority_floor(domain: Domain, examples: Sequence[Any]) -> float:
    """The best constant answer's accuracy on `examples`, all of the domain's gold fields at once (as scored)."""
    return majority_floor([tuple(str(example[field]) for field in domain.labels()) for example in examples])[1]


def chance_floor(n_labels: int) -> float:
    return 1.0 / n_labels


def words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(str(text).casefold()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def nearest(queries: Sequence[str], references: Sequence[str]) -> list[tuple[float, int]]:
    """For each query, (overlap, index) of the reference it overlaps most; ties go to the first."""
    bags = [words(text) for text in references]
    out = []
    for query in queries:
        bag = words(query)
        scores = [jaccard(bag, other) for other in bags]
        best = max(range(len(scores)), key=scores.__getitem__)
        out.append((scores[best], best))
    return out


def label_choices(domain: Domain) -> tuple[str, ...] | None:
    """The first label field's allowed values, from its `Literal` type in the program's signature."""
    field = domain.labels()[0]
    for predictor in domain.program().predictors():
        output = predictor.signature.output_fields.get(field)
        if output is not None and typing.get_origin(output.annotation) is Literal:
            return tuple(str(value) for value in typing.get_args(output.annotation))
    return None


class DomainStats(BaseModel):
    """`ax domains stats`: one domain's floors on its test split and its test items' closeness to train."""

    domain: str
    task: str
    sizes: dict[str, int]
    label_field: str
    majority_label: str
    majority_floor: float
    chance: float | None  # classification only
    nearest_neighbour_floor: float
    median_overlap: float
    near_copies: float  # share of test items at NEAR_COPY overlap or more


def _text(example: Any, inputs: Sequence[str]) -> str:
    return " ".join(str(example[name]) for name in inputs)


def domain_stats(domain: Domain) -> DomainStats:
    """Floors and closeness of `domain` (an ax.programs Domain), computed on its train and test splits."""
    splits, inputs = domain.splits(), domain.inputs()
    field = domain.labels()[0]
    gold = [str(example[field]) for example in splits.test]
    label, floor = majority_floor(gold)
    matches = nearest([_text(e, inputs) for e in splits.test], [_text(e, inputs) for e in splits.train])
    guessed = [str(splits.train[index][field]) for _overlap, index in matches]
    overlaps = [overlap for overlap, _index in matches]
    choices = label_choices(domain) if domain.task == "classification" else None
    n_labels = len(choices) if choices else len({str(e[field]) for e in splits.all()})
    return DomainStats(
        domain=domain.name, task=domain.task, sizes=splits.sizes(), label_field=field, majority_label=str(label),
        majority_floor=floor, chance=chance_floor(n_labels) if domain.task == "classification" else None,
        nearest_neighbour_floor=sum(g == p for g, p in zip(gold, guessed)) / len(gold),
        median_overlap=median(overlaps), near_copies=sum(o >= NEAR_COPY for o in overlaps) / len(overlaps))
