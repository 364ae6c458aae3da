"""Routing a query to a domain adapter, or to the base model when no domain is clearly meant.

A small multinomial logistic regression over TF-IDF word and word-pair features (or over the
unit vectors of a user's embedding function), trained on each domain's own example texts. It
answers with the most probable domain and that probability; below `threshold` it answers None,
which the client serves with the base model rather than guess an adapter.

TF-IDF rows are not length-normalized (only scaled so a typical training text has norm 1): a
query that shares one common word with a domain then carries little evidence and gets a low
confidence, where a normalized row would make that one word look as decisive as a full sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from ax.errors import AxError
from ax.model import atomic_write_text

Embed = Callable[[Sequence[str]], np.ndarray]
# On the 12 shipped domains (bench/router_accuracy.py --out-of-domain), 0.3 left 2.5% of in-domain
# queries to the base model needlessly and still sent 98.6% of a held-out domain's queries there;
# 0.5 left 26.3% needlessly for 99.8%.
DEFAULT_THRESHOLD = 0.3
_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


@dataclass(frozen=True)
class Route:
    """The router's answer: a domain (None = base model), its probability, and every domain's probability."""

    domain: str | None
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)


class RouterState(BaseModel):
    """The saved router: JSON, so loading one never runs code."""

    format_version: int = 1
    domains: list[str]
    features: str  # "tfidf" or "embedding"
    vocabulary: list[str]
    idf: list[float]
    weights: list[list[float]]  # features x domains
    bias: list[float]
    threshold: float


class DomainRouter:
    """Picks the adapter for a query; build it with `DomainRouter.fit`."""

    def __init__(self, state: RouterState, embed: Embed | None = None):
        if state.features == "embedding" and embed is None:
            raise AxError("This router was trained on embeddings; pass the same embedding function to use it.")
        self.state = state
        self.embed = embed
        self._index = {term: i for i, term in enumerate(state.vocabulary)}
        self._idf = np.asarray(state.idf)
        self._weights = np.asarray(state.weights).reshape(-1, len(state.domains))
        self._bias = np.asarray(state.bias)

    @property
    def domains(self) -> list[str]:
        return list(self.state.domains)

    @property
    def threshold(self) -> float:
        return self.state.threshold

    def _featurize(self, texts: Sequence[str]) -> np.ndarray:
        if self.embed is not None:
            return _unit_rows(np.asarray(self.embed(list(texts)), dtype=float))
        return _tfidf(texts, self._index, self._idf)

    def route(self, query: str) -> Route:
        features = self._featurize([query])
        if not features.any():  # nothing known in the query: no evidence for any domain
            return Route(None, 0.0, {d: 0.0 for d in self.domains})
        probs = _softmax(features @ self._weights + self._bias)[0]
        best = int(probs.argmax())
        chosen = self.domains[best] if probs[best] >= self.threshold else None
        return Route(chosen, float(probs[best]), dict(zip(self.domains, map(float, probs))))

    @classmethod
    def fit(cls, texts_by_domain: Mapping[str, Sequence[str]], *, threshold: float = DEFAULT_THRESHOLD,
            embed: Embed | None = None, l2: float = 1e-3) -> DomainRouter:
        """Train on each domain's example texts (e.g. its training questions)."""
        domains = sorted(d for d, texts in texts_by_domain.items() if texts)
        if len(domains) < 2:
            raise AxError(f"A router needs example texts for at least two domains, got {domains}.")
        texts = [t for d in domains for t in texts_by_domain[d]]
        labels = np.array([i for i, d in enumerate(domains) for _ in texts_by_domain[d]])
        if embed is not None:
            vocabulary, idf = [], np.zeros(0)
            features = _unit_rows(np.asarray(embed(texts), dtype=float))
        else:
            vocabulary, idf = _fit_vocabulary(texts)
            features = _tfidf(texts, {t: i for i, t in enumerate(vocabulary)}, idf)
        weights, bias = _fit_logistic(features, labels, len(domains), l2)
        state = RouterState(domains=domains, features="embedding" if embed else "tfidf", vocabulary=vocabulary,
                            idf=idf.tolist(), weights=weights.tolist(), bias=bias.tolist(), threshold=threshold)
        return cls(state, embed)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.state.model_dump_json())

    @classmethod
    def load(cls, path: str | Path, embed: Embed | None = None) -> DomainRouter:
        path = Path(path)
        try:
            return cls(RouterState.model_validate_json(path.read_bytes()), embed)
        except FileNotFoundError:
            raise AxError(f"Router file not found: {path}") from None
        except ValidationError as exc:
            raise AxError(f"Router file {path} is corrupt: {exc.errors()[0]['msg']}") from None


def evaluate_router(router: DomainRouter, labelled_queries: Iterable[tuple[str, str | None]]) -> float:
    """Fraction of queries routed to their expected domain (None: expected to stay on the base model)."""
    pairs = list(labelled_queries)
    if not pairs:
        raise AxError("No labelled queries to evaluate the router on.")
    return sum(router.route(query).domain == expected for query, expected in pairs) / len(pairs)


def _fit_vocabulary(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Terms and their IDF, scaled so that the training texts' rows have mean norm 1."""
    document_frequency = Counter(term for text in texts for term in set(_terms(text)))
    vocabulary = sorted(document_frequency)
    idf = np.log((1 + len(texts)) / (1 + np.array([document_frequency[t] for t in vocabulary]))) + 1
    rows = _tfidf(texts, {t: i for i, t in enumerate(vocabulary)}, idf)
    return vocabulary, idf / max(np.linalg.norm(rows, axis=1).mean(), 1e-12)


def _tfidf(texts: Sequence[str], index: Mapping[str, int], idf: np.ndarray) -> np.ndarray:
    matrix = np.zeros((len(texts), len(index)))
    for row, text in enumerate(texts):
        for term, count in Counter(_terms(text)).items():
            if term in index:
                matrix[row, index[term]] = count * idf[index[term]]
    return matrix


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _fit_logistic(features: np.ndarray, labels: np.ndarray, classes: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced softmax regression with an L2 penalty, solved by L-BFGS."""
    from scipy.optimize import minimize

    n, dim = features.shape
    onehot = np.eye(classes)[labels]
    sample_weight = (n / (classes * np.bincount(labels, minlength=classes)))[labels][:, None] / n

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = flat[:-classes].reshape(dim, classes), flat[-classes:]
        probs = _softmax(features @ weights + bias)
        value = -(sample_weight * onehot * np.log(probs + 1e-12)).sum() + 0.5 * l2 * (weights ** 2).sum()
        residual = sample_weight * (probs - onehot)
        grad_w = features.T @ residual + l2 * weights
        return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    result = minimize(loss, np.zeros(dim * classes + classes), jac=True, method="L-BFGS-B")
    return result.x[:-classes].reshape(dim, classes), result.x[-classes:]
