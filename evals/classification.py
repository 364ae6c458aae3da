"""Per-class truth for classification domains, and the floors any configuration must beat.

Accuracy alone hides a model that answers one label for everything: on a set whose majority
label covers 60% of the items, that model scores 60%. So each configuration also gets
macro-F1 and balanced accuracy (both at 1/K for a constant answer over K labels, whatever the
balance), per-class recall, the distribution of its answers and a confusion matrix, and every
domain states its floors: the majority label's share (the best constant answer) and uniform
chance. An answer outside the label set (off-label text, an unparsed output) is counted in
an extra ``(other)`` column and is wrong for every class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import confusion_matrix, f1_score, recall_score

from ax.programs.floors import chance_floor, majority_floor

OTHER = "(other)"
DEGENERATE_SHARE = 0.9  # one answer covering this share of the items makes a configuration degenerate


class Floors(BaseModel):
    """What a configuration must beat on these items."""

    label_field: str | None  # None: the answer is every gold field together (extraction, computation)
    majority_answer: str
    majority: float  # share of the most common gold answer: the best any constant answer scores
    chance: float | None  # 1 / number of labels; classification only
    labels: list[str] | None  # the label set, classification only
    majority_macro_f1: float | None = None  # macro-F1 of always giving the majority answer; classification only


class ClassMetrics(BaseModel):
    """One configuration's answers against the gold labels of one label field."""

    accuracy: float  # of this field alone, which for multi-field domains differs from the item accuracy
    macro_f1: float
    balanced_accuracy: float
    recall: dict[str, float]
    predictions: dict[str, int]  # how often each label was answered, OTHER for anything else
    confusion: list[list[int]]  # rows: gold labels; columns: the labels, then OTHER
    top_answer: str
    top_share: float


def domain_floors(gold: Sequence[Hashable], *, label_field: str | None, labels: Sequence[str] | None) -> Floors:
    answer, share = majority_floor(list(gold))
    constant = class_metrics([str(g) for g in gold], [str(answer)] * len(gold), labels).macro_f1 if labels else None
    return Floors(label_field=label_field, majority_answer=str(answer), majority=share,
                  chance=chance_floor(len(labels)) if labels else None, labels=list(labels) if labels else None,
                  majority_macro_f1=constant)


def answer_distribution(answers: Sequence[Hashable]) -> tuple[str, float]:
    """The most common answer and its share, for any kind of answer."""
    answer, share = majority_floor(list(answers))
    return str(answer), share


def class_metrics(gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> ClassMetrics:
    """Macro-F1, balanced accuracy, recall per class, answer counts and the confusion matrix.

    ``gold`` and ``predicted`` are already normalized the way the metric compares labels;
    predictions outside ``labels`` (None included) become OTHER. Averages run over ``labels``,
    so a class the set never asks about counts nowhere and one never answered scores 0.
    """
    labels = list(labels)
    answered = [p if p in labels else OTHER for p in predicted]
    columns = [*labels, OTHER]
    present = [label for label in labels if label in set(gold)]  # recall is undefined for classes without items
    counts = Counter(answered)
    top, top_share = answer_distribution(answered)
    # Balanced accuracy is the mean recall over the classes the items ask about (sklearn's definition).
    recall = recall_score(gold, answered, labels=present, average=None, zero_division=0.0)
    return ClassMetrics(
        accuracy=sum(g == p for g, p in zip(gold, answered)) / len(gold),
        macro_f1=float(f1_score(gold, answered, labels=present, average="macro", zero_division=0.0)),
        balanced_accuracy=float(recall.mean()),
        recall={label: float(r) for label, r in zip(present, recall)},
        predictions={label: counts.get(label, 0) for label in columns},
        confusion=confusion_matrix(gold, answered, labels=columns)[:len(labels)].tolist(),
        top_answer=top, top_share=top_share,
    )


def macro_f1_replicates(gold: Sequence[str], cells: dict[str, list[Sequence[str]]], labels: Sequence[str], *,
                        n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each cell's macro-F1, items drawn once per replicate for all cells, runs within each.

    ``cells`` maps a cell to its runs' answers (each aligned with ``gold``, already mapped to
    ``labels`` or OTHER). Joint item draws keep the cells paired, so differences of replicates
    are replicates of differences. Computed from per-class counts in one matrix product per run
    rather than by calling sklearn thousands of times; the test checks it against sklearn.
    """
    present = [label for label in labels if label in set(gold)]
    truth = np.array([[g == c for c in present] for g in gold], dtype=float)  # items x classes
    rng = np.random.default_rng(seed)
    n = len(gold)
    item_weights = rng.multinomial(n, np.full(n, 1 / n), size=n_bootstrap).astype(float)
    actual = item_weights @ truth  # replicates x classes
    out = {}
    for cell, runs in cells.items():
        run_weights = rng.multinomial(len(runs), np.full(len(runs), 1 / len(runs)), size=n_bootstrap)
        hits = np.zeros_like(actual)
        answered = np.zeros_like(actual)
        for r, answers in enumerate(runs):
            said = np.array([[a == c for c in present] for a in answers], dtype=float)
            hits += run_weights[:, r, None] * (item_weights @ (truth * said))
            answered += run_weights[:, r, None] * (item_weights @ said)
        denominator = answered + actual * len(runs)
        f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
        out[cell] = f1.mean(axis=1)
    return out
