"""The LM client on a tiny random-init model: parsing, batching, adapters, cache, usage, sampling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import dspy
import pytest

from ax.client import Client
from ax.client.generation import GenerationParams, GenerationRequest
from ax.client.schema import FieldSpec, output_fields
from ax.errors import AxError
from ax.inference.local import LocalBackend
from ax.model import load_model


class Triage(dspy.Signature):
    """Triage the message."""

    message: str = dspy.InputField()
    urgency: Literal["low", "medium", "high", "emergency"] = dspy.OutputField()
    minutes: int = dspy.OutputField()
    amount: float = dspy.OutputField()
    escalate: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    note: str = dspy.OutputField()


def test_schema_is_read_from_chat_adapter_prompt():
    messages = dspy.ChatAdapter().format(Triage, [], {"message": "hi"})
    fields = output_fields(messages)
    assert [f.name for f in fields] == ["urgency", "minutes", "amount", "escalate", "tags", "note"]
    assert fields[0] == FieldSpec(name="urgency", kind="choice", choices=["low", "medium", "high", "emergency"])
    assert [f.kind for f in fields[1:]] == ["int", "float", "choice", "json", "text"]
    assert fields[3].choices == ["True", "False"]
    assert output_fields([{"role": "user", "content": "plain chat"}]) == []


@pytest.mark.parametrize("program", [
    lambda: dspy.Predict(Triage),
    lambda: dspy.ChainOfThought(Triage),
    lambda: dspy.Predict("question -> answer"),
    lambda: dspy.ChainOfThought("context, question -> answer: int"),
])
def test_every_output_field_parses(tiny_client, program):
    lm = tiny_client.lm(max_tokens=200)
    module = program()
    signature = module.predictors()[0].signature
    with dspy.context(lm=lm):
        for i in range(6):
            prediction = module(**{name: f"input {i} about a contract clause" for name in signature.input_fields})
            for name, field in signature.output_fields.items():
                assert name in prediction, f"missing {name}"
                if field.annotation is int:
                    assert isinstance(prediction[name], int)
                if field.annotation is bool:
                    assert isinstance(prediction[name], bool)


def _prompts(n):
    return [f"<|im_start|>user\nquestion number {i}: the tenant pays {i * 7} dollars<|im_end|>\n<|im_start|>assistant\n"
            for i in range(n)]


def _run(backend, requests, threads):
    with ThreadPoolExecutor(threads) as pool:
        return [g.text for g in pool.map(backend.generate, requests)]


def test_batched_generation_matches_one_at_a_time(tiny_model_dir):
    params = [GenerationParams(max_new_tokens=24), GenerationParams(max_new_tokens=5, constraint="int"),
              GenerationParams(max_new_tokens=8, constraint="choice", choices=("yes", "no", "maybe"))]
    requests = [GenerationRequest(p, None, params[i % 3]) for i, p in enumerate(_prompts(12))]
    single = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=1)
    batched = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=16, max_wait_s=0.05)
    expected = [single.generate(r).text for r in requests]
    got = _run(batched, requests, threads=12)
    assert max(batched.batch_sizes) > 1, "threads were never batched together"
    assert got == expected
    assert len(set(expected)) > 6, "the tiny model should answer different prompts differently"
    for text, r in zip(got, requests):
        if r.params.constraint == "choice":
            assert text in ("yes", "no", "maybe")
        if r.params.constraint == "int":
            assert any(c.isdigit() for c in text)  # decoding extracts the number from it
    single.close()
    batched.close()


def test_rows_join_a_running_batch_and_answer_as_alone(tiny_model_dir, monkeypatch):
    # Budgets far apart: a short answer must not wait for the long ones, and rows that join a
    # batch already decoding must answer exactly as they do alone.
    import ax.inference.local as local

    decoding_when_joined, mixed_steps = [], []

    class Recording(local.Batch):
        def admit(self, row, states, capacity):
            decoding_when_joined.append(len(self.live))
            super().admit(row, states, capacity)

        def step(self, model, adapter_kwargs, drafts):
            prompts = [bool(row.backlog) for row in self.live]
            mixed_steps.append(any(prompts) and not all(prompts))
            return super().step(model, adapter_kwargs, drafts)

    monkeypatch.setattr(local, "Batch", Recording)
    budgets = [40, 3, 20, 2, 40, 5, 12, 1]
    requests = [GenerationRequest(p, None, GenerationParams(max_new_tokens=budgets[i % len(budgets)]))
                for i, p in enumerate(_prompts(16))]
    single = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=1)
    batched = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=4, max_wait_s=0.05)
    expected = [single.generate(r).text for r in requests]
    assert _run(batched, requests, threads=16) == expected
    assert max(batched.batch_sizes) == 4
    assert any(decoding_when_joined), "no row ever joined a batch already decoding"
    assert any(mixed_steps), "a joining row's prompt was never fed in the decoding rows' step"
    single.close()
    batched.close()


def test_mixed_adapters_from_16_threads_never_cross(tiny_model_dir, tiny_adapters):
    backend = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=16, max_wait_s=0.05)
    for name, path in tiny_adapters.items():
        backend.load_adapter(name, path)
    adapters = [None, "alpha", "beta"]
    prompts = _prompts(4)
    requests = [GenerationRequest(prompts[i % 4], adapters[i % 3], GenerationParams(max_new_tokens=12))
                for i in range(48)]
    expected = {(r.prompt, r.adapter): backend.generate(r).text for r in requests[:12]}
    assert len({expected[(prompts[0], a)] for a in adapters if (prompts[0], a) in expected} | set()) >= 1
    per_prompt = {}
    for (prompt, adapter), text in expected.items():
        per_prompt.setdefault(prompt, set()).add(text)
    assert all(len(texts) == 3 for texts in per_prompt.values()), "adapters must answer differently"
    got = _run(backend, requests, threads=16)
    assert max(backend.batch_sizes) > 1
    for r, text in zip(requests, got):
        assert text == expected[(r.prompt, r.adapter)]
    backend.close()


def test_lm_views_route_adapters_and_sum_usage(tiny_model_dir, tiny_adapters):
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    client = Client(backend, model_name="tiny", cache=False)
    for name, path in tiny_adapters.items():
        client.load_adapter(name, path)
    lm = client.lm(max_tokens=40)
    predict = dspy.Predict("question -> answer")
    answers = {}
    for adapter in (None, "alpha", "beta"):
        with lm.using_adapter(adapter):
            answers[adapter] = predict(question="who binds the clause?").answer
    assert len(set(answers.values())) == 3
    with dspy.context(lm=lm.with_adapter("alpha")):
        assert predict(question="who binds the clause?").answer == answers["alpha"]
    totals = lm.usage_summary()
    assert totals["calls"] == 4 and totals["per_adapter"] == {"base": 1, "alpha": 2, "beta": 1}
    assert totals["prompt_tokens"] > 0 and totals["completion_tokens"] > 0
    with pytest.raises(AxError, match="Unknown adapter 'gamma'"):
        lm.with_adapter("gamma")
    backend.close()


def test_cache_keys_on_weights_not_names(tiny_model_dir, tiny_adapters, tmp_path):
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    client = Client(backend, model_name="tiny", cache_path=tmp_path / "cache")
    client.load_adapter("domain", tiny_adapters["alpha"])
    lm = client.lm(adapter="domain", max_tokens=30)
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        first = predict(question="q").answer
        assert predict(question="q").answer == first
    assert lm.cache_stats()["hits"] == 1 and lm.cache_stats()["misses"] == 1
    client.load_adapter("domain", tiny_adapters["beta"])  # same name, other weights: a miss
    with dspy.context(lm=lm):
        assert predict(question="q").answer != first
    assert lm.cache_stats()["misses"] == 2
    backend.close()


def test_a_bf16_copy_does_not_share_cached_answers_with_the_fp32_weights(tiny_model_dir, tmp_path):
    predict = dspy.Predict("question -> answer")
    stats = {}
    for dtype in ("float32", "bfloat16", "float32"):
        backend = LocalBackend(load_model(str(tiny_model_dir), dtype=dtype))
        lm = Client(backend, model_name="tiny", cache_path=tmp_path / "cache").lm(max_tokens=8)
        with dspy.context(lm=lm):
            predict(question="q")
        stats[dtype] = lm.cache_stats()
        assert backend.base_fingerprint == load_model(str(tiny_model_dir)).fingerprint  # adapters still fit both
        backend.close()
    assert stats["bfloat16"]["misses"] == 1  # not the fp32 answer from the cache
    assert stats["float32"]["hits"] == 1  # fp32 keeps its key: the first run's answer


def test_cache_can_be_switched_off(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AX_NO_CACHE", "1")
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    client = Client(backend, model_name="tiny", cache_path=tmp_path / "cache")
    assert client.cache.stats() == {"enabled": False, "hits": 0, "misses": 0}
    backend.close()


def test_sampling_with_a_seed_is_reproducible(tiny_model_dir):
    request = lambda seed: GenerationRequest(_prompts(1)[0], None,  # noqa: E731
                                             GenerationParams(max_new_tokens=16, temperature=1.0, seed=seed))
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    try:
        assert backend.generate(request(7)).text == backend.generate(request(7)).text
        assert len({backend.generate(request(s)).text for s in range(5)}) > 1
    finally:
        backend.close()


def test_weights_served_under_several_names_are_loaded_once(tiny_model_dir, tiny_adapters):
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    client = Client(backend, model_name="tiny", cache=False)
    lm = client.lm(max_tokens=20)
    predict = dspy.Predict("question -> answer")

    def answer(adapter):
        with dspy.context(lm=lm.with_adapter(adapter)):
            return predict(question="who binds the clause?").answer

    client.load_adapter("trained", tiny_adapters["alpha"])
    first = answer("trained")
    client.ensure_adapter("eval", tiny_adapters["alpha"])
    client.ensure_adapter("eval", tiny_adapters["alpha"])  # already served: nothing happens
    assert client.adapters() == ["eval", "trained"] and len(backend.torch_model.peft_config) == 1
    assert answer("eval") == first
    client.unload_adapter("trained")  # the weights stay while another name serves them
    assert answer("eval") == first
    client.load_adapter("eval", tiny_adapters["beta"])  # alpha's weights go with their last name
    assert len(backend.torch_model.peft_config) == 1 and answer("eval") != first
    backend.close()


def test_adapter_errors_are_actionable(tiny_client, tmp_path):
    with pytest.raises(AxError, match="no adapter_config.json"):
        tiny_client.load_adapter("x", tmp_path)


def test_adapter_for_another_base_model_is_refused_naming_both(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ax.adapter_store import save_adapter
    from tiny_model import make_tiny_adapter, make_tiny_model

    other_dir = make_tiny_model(tmp_path / "other", seed=3, hidden_size=32)
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    other = get_peft_model(AutoModelForCausalLM.from_pretrained(other_dir), LoraConfig(r=2, target_modules=["q_proj"]))
    save_adapter(other, tmp_path / "with-manifest", domain="legal", base_name="other-model",
                 base_fingerprint="0123456789abcdef")
    with pytest.raises(AxError, match="other-model.*tiny-model|tiny-model.*other-model"):
        backend.load_adapter("legal", tmp_path / "with-manifest")
    plain = make_tiny_adapter(other_dir, tmp_path / "plain-peft", manifest=False)  # PEFT's shapes decide
    with pytest.raises(AxError, match="does not fit base model"):
        backend.load_adapter("plain", plain)
    assert backend.adapters() == []
    backend.close()


def test_a_text_value_ends_where_the_model_imitates_a_marker():
    """SmolLM2 wrote '[## completed ## ]]' and '[##' loops into free-text fields until its budget ran out."""
    from ax.client.decoding import DecodingSettings, decode
    from ax.client.generation import Generation
    from ax.inference.rows import cut_at_stop

    class Imitator:
        def render(self, messages):
            return messages[-1]["content"]

        def generate(self, request):
            text = "Licensee\n[## completed ## ]]\n[## completed ## ]]" if "party" in request.prompt[-40:] else "payment"
            return Generation(text=cut_at_stop(text, request.params.stop), prompt_tokens=3, completion_tokens=2)

    fields = [FieldSpec(name="clause_type", kind="choice", choices=["payment", "warranty"]),
              FieldSpec(name="obligated_party", kind="text")]
    decoded = decode(Imitator(), [{"role": "user", "content": "clause"}], fields, None, DecodingSettings())
    assert "[[ ## obligated_party ## ]]\nLicensee\n\n[[ ## completed ## ]]" in decoded.text


def test_numbers_keep_their_thousands_separators():
    """Reports write '4,310 units'; an int field that may not copy the comma answered 4."""
    from ax.client.decoding import clean_value

    def as_int(text):
        return clean_value(FieldSpec(name="n", kind="int"), text)

    assert as_int("4,310") == "4310" and as_int("1,234,567 units") == "1234567"
    assert as_int("3, 4") == "3" and as_int("1,5") == "1"  # a list or a decimal comma is not a separator
    assert clean_value(FieldSpec(name="x", kind="float"), "2,500.75") == "2500.75"


def test_the_number_constraint_lets_a_comma_follow_a_digit(tiny_model_dir):
    from transformers import AutoTokenizer

    from ax.inference.constraints import NumberConstraint, TokenTables

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tables = TokenTables(tokenizer)
    constraint = NumberConstraint(tables, integer=True)
    comma = [i for i, text in enumerate(tables.texts) if text == ","]
    assert comma and comma[0] not in constraint.allowed([]).tolist()  # a value starts with a digit
    assert comma[0] in constraint.allowed([5]).tolist()


def test_a_list_of_numbers_decodes_as_one(tiny_model_dir):
    """A list[float] field free-decoded by a small model was anything but a list of numbers."""
    from ax.client.decoding import DecodingSettings

    class Cells(dspy.Signature):
        question: str = dspy.InputField()
        cells: list[float] = dspy.OutputField()

    spec = output_fields(dspy.ChatAdapter().format(Cells, [], {"question": "q"}))[0]
    assert spec.kind == "float_list" and spec.type_text == "list[float]"
    assert DecodingSettings().params_for(spec, 0).constraint == "float_list"
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    request = GenerationRequest("<|im_start|>user\nnumbers<|im_end|>\n<|im_start|>assistant\n", None,
                                GenerationParams(max_new_tokens=24, constraint="float_list"))
    text = backend.generate(request).text
    backend.close()
    assert text.startswith("[") and set(text[1:]) <= set("0123456789.-, ]"), text
    assert text.count("]") <= 1 and (text.endswith("]") or "]" not in text)


def test_unloading_the_last_adapter_leaves_a_base_that_takes_new_ones(tiny_model_dir, tiny_adapters):
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    request = GenerationRequest("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", None,
                                GenerationParams(max_new_tokens=6))
    before = backend.generate(request).text
    backend.load_adapter("alpha", tiny_adapters["alpha"])
    backend.unload_adapter("alpha")
    assert backend.generate(request).text == before
    backend.load_adapter("beta", tiny_adapters["beta"])
    assert backend.adapters() == ["beta"]
    backend.close()


def test_number_constraints_scan_the_vocabulary_once(tiny_model_dir):
    from ax.inference.constraints import NumberConstraint, NumberListConstraint, TokenTables

    tables = TokenTables(load_model(str(tiny_model_dir)).tokenizer)
    first, second = NumberConstraint(tables, integer=False), NumberConstraint(tables, integer=False)
    assert first.first is second.first and len(first.first) > 0
    lists = NumberListConstraint(tables, integer=True), NumberListConstraint(tables, integer=True)
    assert lists[0].inner is lists[1].inner and lists[0].closes is lists[1].closes
    assert NumberConstraint(tables, integer=True).first is not first.first  # "." only in decimals
