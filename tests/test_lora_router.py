"""The domain router: accuracy on separable toy data, base-model fallback, save/load, embeddings."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from ax.errors import AxError

# The router is bench code (bench/router.py, used by bench/router_accuracy.py), not part of the ax package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from router import DomainRouter, evaluate_router  # noqa: E402

VOCAB = {
    "legal": "tenant landlord lease clause contract breach court liability indemnify agreement party statute".split(),
    "finance": "revenue earnings margin cash flow dividend stock quarter profit loss ebitda balance".split(),
    "medical": "patient symptom fever diagnosis dose prescription blood pressure chest pain clinic".split(),
}
FILLER = "the a of and to in is for with on what when does".split()


def sentences(domain: str, n: int, seed: int) -> list[str]:
    rng = random.Random(f"{domain}-{seed}")
    return [" ".join(rng.sample(VOCAB[domain], 3) + rng.sample(FILLER, 4)) for _ in range(n)]


@pytest.fixture(scope="module")
def router():
    return DomainRouter.fit({d: sentences(d, 30, seed=0) for d in VOCAB}, threshold=0.5)


def test_routes_held_out_queries_to_their_domain(router):
    held_out = [(q, d) for d in VOCAB for q in sentences(d, 20, seed=1)]
    assert evaluate_router(router, held_out) >= 0.95
    route = router.route("the tenant may terminate the lease for breach")
    assert route.domain == "legal" and route.confidence > 0.5
    assert sum(route.probabilities.values()) == pytest.approx(1.0)


def test_queries_without_domain_evidence_go_to_the_base_model(router):
    assert router.route("what is the weather like on mars").domain is None
    assert router.route("zzz qqq").confidence == 0.0
    assert evaluate_router(router, [("hello there", None), ("dose of the prescription for fever", "medical")]) == 1.0
    strict = DomainRouter(router.state.model_copy(update={"threshold": 0.999}))
    assert strict.route("the tenant may terminate the lease for breach").domain is None


def test_save_and_load_give_the_same_routes(router, tmp_path):
    router.save(tmp_path / "router.json")
    loaded = DomainRouter.load(tmp_path / "router.json")
    for query in ["cash flow and dividend", "chest pain and fever", "the court ruled"]:
        assert loaded.route(query) == router.route(query)
    (tmp_path / "bad.json").write_text('{"domains": 3}')
    with pytest.raises(AxError, match="bad.json is corrupt"):
        DomainRouter.load(tmp_path / "bad.json")
    with pytest.raises(AxError, match="not found"):
        DomainRouter.load(tmp_path / "none.json")


def test_an_embedding_function_can_replace_tfidf(tmp_path):
    def embed(texts):  # a stand-in embedding: counts of each domain's words
        return np.array([[sum(w in VOCAB[d] for w in t.split()) for d in sorted(VOCAB)] for t in texts], dtype=float)

    router = DomainRouter.fit({d: sentences(d, 10, seed=0) for d in VOCAB}, embed=embed)
    assert evaluate_router(router, [(q, d) for d in VOCAB for q in sentences(d, 10, seed=2)]) == 1.0
    router.save(tmp_path / "r.json")
    with pytest.raises(AxError, match="same embedding function"):
        DomainRouter.load(tmp_path / "r.json")
    assert DomainRouter.load(tmp_path / "r.json", embed=embed).route("revenue and profit").domain == "finance"


def test_needs_two_domains_and_some_queries(router):
    with pytest.raises(AxError, match="at least two domains"):
        DomainRouter.fit({"legal": ["a lease"], "finance": []})
    with pytest.raises(AxError, match="No labelled queries"):
        evaluate_router(router, [])
