"""The retrieval step of agent-shaped domains: BM25 over the passages a domain ships, and its metric.

Retrieval is a plain Python step between two predictors: it has no instructions of its own, so
the predictor that wrote its query is the one GEPA tunes when it misses (see `metrics.Step`).
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from ax.context.retrieval import BM25, Document, words
from ax.programs.metrics import Metric, label_metric, read_field

RETRIEVED = "retrieved_id"  # the prediction field that carries what retrieval returned


class PassageIndex:
    """A fixed corpus of `Document`s; `top(query)` is the best BM25 match (the first passage on a tie).

    Numbers in the query are not matched: the passages are rules and facts full of limits, years and
    counts, and a customer's "24 days" or a claim's "12 bridges" would pick whichever passage happens
    to hold a 24 or a 12 (of "12,400").
    """

    def __init__(self, documents: Sequence[Document]):
        self.documents = tuple(documents)
        self.bm25 = BM25([document.text for document in self.documents])

    def top(self, query: str) -> Document:
        scores = self.bm25.scores(" ".join(word for word in words(query) if not word.isdigit()))
        return self.documents[max(range(len(scores)), key=scores.__getitem__)]

    def ids(self) -> tuple[str, ...]:
        return tuple(document.id for document in self.documents)


def cite(document: Document) -> str:
    """A passage as a predictor reads it: its id, then its text (examples carry gold passages the same way)."""
    return f"{document.id}: {document.text}"


def retrieval_metric(gold_field: str) -> Metric:
    """Whether retrieval returned the gold passage: the prediction's `retrieved_id` against the gold `gold_field`.

    The gold id is the one the answer must cite, so examples need no copy of it under another name.
    """
    check = label_metric(RETRIEVED)

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
        return check({RETRIEVED: read_field(gold, gold_field)}, pred)

    metric.__name__ = f"{RETRIEVED}_is_{gold_field}"
    return metric
