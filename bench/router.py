"""A domain router for bench/router_accuracy.py: which adapter, or the base model, would serve a query.

Not part of ax (the client serves the adapter a call names); the bench measures whether a lexical
classifier could pick it. A multinomial logistic regression (scikit-learn) over TF-IDF word and
word-pair features (or over the unit vectors of a user's embedding function), trained on each
domain's own example texts. It answers with the most probable domain and that probability; below
`threshold` it answers None, meaning the base model should answer rather than a guessed adapter.

TF-IDF rows are not length-normalized (only scaled so a typical training text has norm 1): a
query that shares one common word with a domain then carries little evidence and gets a low
confidence, where a normalized row would make that one word look as decisive as a full sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError
from scipy.sparse.linalg import norm as sparse_norm
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from ax.errors import AxError
from ax.model import atomic_write_text

Embed = Callable[[Sequence[str]], np.ndarray]
DEFAULT_THRESHOLD = 0.3  # the trade between needless and missed fallbacks: README.md, "Router"


def _vectorizer(vocabulary: Sequence[str] | None = None) -> TfidfVectorizer:
    """Lower-cased alphanumeric words and word pairs, raw counts times IDF, rows left unnormalized."""
    return TfidfVectorizer(token_pattern=r"[a-z0-9]+", ngram_range=(1, 2), norm=None, vocabulary=vocabulary)


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
        if embed is None:
            self._vectorizer = _vectorizer(state.vocabulary)
            self._vectorizer.idf_ = np.asarray(state.idf)
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
            return normalize(np.asarray(self.embed(list(texts)), dtype=float))
        return self._vectorizer.transform(texts).toarray()

    def route(self, query: str) -> Route:
        features = self._featurize([query])
        if not features.any():  # nothing known in the query: no evidence for any domain
            return Route(None, 0.0, {d: 0.0 for d in self.domains})
        probs = softmax(features @ self._weights + self._bias, axis=1)[0]
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
            features = normalize(np.asarray(embed(texts), dtype=float))
        else:
            vectorizer = _vectorizer()
            features = vectorizer.fit_transform(texts)
            scale = 1 / max(sparse_norm(features, axis=1).mean(), 1e-12)
            features, idf = features * scale, vectorizer.idf_ * scale
            vocabulary = vectorizer.get_feature_names_out().tolist()
        # Softmax regression, class-balanced, with penalty l2/2 * |weights|^2 on the mean loss (C scales the
        # summed loss). For two domains scikit-learn fits one logit z: softmax over (-z/2, z/2) is the same
        # model, whose penalty is half of |z|^2, hence twice the C.
        binary = len(domains) == 2
        model = LogisticRegression(C=(1 + binary) / (l2 * len(texts)), class_weight="balanced", tol=1e-5,
                                   max_iter=15000).fit(features, labels)
        weights, bias = model.coef_.T, model.intercept_
        if binary:
            weights, bias = np.hstack([-weights / 2, weights / 2]), np.concatenate([-bias / 2, bias / 2])
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
