"""The shared-prefix cache: it changes no greedy token, never crosses adapters or reloads, stays bounded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
import torch

from ax.client.generation import GenerationParams, GenerationRequest
from ax.client.prompting import render_chat
from ax.inference.local import LocalBackend
from ax.inference.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, common_prefix_length
from ax.model import load_model

PARAMS = [GenerationParams(max_new_tokens=16), GenerationParams(max_new_tokens=5, constraint="int"),
          GenerationParams(max_new_tokens=8, constraint="choice", choices=("yes", "no", "maybe")),
          GenerationParams(max_new_tokens=12, stop=("the",))]


@pytest.fixture(scope="module")
def dora_adapter(tiny_model_dir, tmp_path_factory):
    from tiny_model import make_tiny_adapter

    return make_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("dora") / "dora", seed=3, dora=True)


def _program_prompts(tokenizer, n: int) -> list[str]:
    """Prompts of one DSPy program: a long shared system message, then each call's own question."""
    signature = dspy.Predict("question -> answer").signature
    return [render_chat(tokenizer, dspy.ChatAdapter().format(signature, [], {"question": f"who pays {i * 7} dollars?"}))
            for i in range(n)]


def _backend(model_dir, adapters: dict, **kwargs) -> LocalBackend:
    backend = LocalBackend(load_model(str(model_dir)), **kwargs)
    for name, path in adapters.items():
        backend.load_adapter(name, path)
    return backend


def _requests(prompts: list[str], adapters: list[str | None], n: int) -> list[GenerationRequest]:
    return [GenerationRequest(prompts[i % len(prompts)], adapters[i % len(adapters)], PARAMS[i % len(PARAMS)])
            for i in range(n)]


def _threaded(backend: LocalBackend, requests: list[GenerationRequest]) -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        return [g.text for g in pool.map(backend.generate, requests)]


def test_batched_rows_on_mixed_adapters_decode_as_without_the_cache(tiny_model_dir, tiny_adapters):
    reference = _backend(tiny_model_dir, tiny_adapters, max_batch_size=1, prefix_cache=False)
    cached = _backend(tiny_model_dir, tiny_adapters, max_batch_size=16, max_wait_s=0.05)
    prompts = _program_prompts(cached.tokenizer, 8)
    requests = _requests(prompts, [None, "alpha", "beta"], 32)
    expected = [reference.generate(r) for r in requests]
    assert len({g.text for g in expected}) > 8, "the tiny model should answer prompts and adapters differently"
    assert _threaded(cached, requests) == [g.text for g in expected]
    assert max(cached.batch_sizes) > 1
    assert cached.prefix_cache.reused_tokens >= cached.prefix_cache.computed_tokens > 0
    # One at a time, each row shares its prefix with the prompts before it.
    single = [cached.generate(r) for r in requests]
    assert [g.text for g in single] == [g.text for g in expected]
    assert [g.prompt_tokens for g in single] == [g.prompt_tokens for g in expected]  # usage counts the whole prompt
    assert expected[0].prompt_tokens == len(cached.tokenizer.encode(prompts[0], add_special_tokens=False))
    reference.close()
    cached.close()


def test_dora_adapters_and_sampled_rows_decode_as_without_the_cache(tiny_model_dir, tiny_adapters, dora_adapter):
    adapters = {"alpha": tiny_adapters["alpha"], "dora": dora_adapter}
    reference = _backend(tiny_model_dir, adapters, max_batch_size=1, prefix_cache=False)
    cached = _backend(tiny_model_dir, adapters, max_batch_size=16, max_wait_s=0.05)
    prompts = _program_prompts(cached.tokenizer, 4)
    requests = _requests(prompts, [None, "alpha", "dora"], 12)
    requests += [GenerationRequest(p, "dora", GenerationParams(max_new_tokens=12, temperature=1.0, seed=s))
                 for s, p in enumerate(prompts)]
    expected = [reference.generate(r).text for r in requests]
    assert _threaded(cached, requests) == expected
    assert [cached.generate(r).text for r in requests] == expected
    assert cached.prefix_cache.reused_tokens > 0
    reference.close()
    cached.close()


def test_an_adapter_reloaded_with_other_weights_gets_fresh_prefix_states(tiny_model_dir, tiny_adapters):
    backend = _backend(tiny_model_dir, {"domain": tiny_adapters["alpha"]}, max_batch_size=1)
    requests = _requests(_program_prompts(backend.tokenizer, 3), ["domain"], 3)
    before = [backend.generate(r).text for r in requests]
    backend.load_adapter("domain", tiny_adapters["beta"])  # same name, other weights
    reference = _backend(tiny_model_dir, {"domain": tiny_adapters["beta"]}, prefix_cache=False)
    expected = [reference.generate(r).text for r in requests]
    assert expected != before
    assert [backend.generate(r).text for r in requests] == expected
    backend.close()
    reference.close()


def test_the_backend_keeps_at_most_its_configured_prefix_entries(tiny_model_dir):
    backend = _backend(tiny_model_dir, {}, max_batch_size=1, prefix_cache_entries=2)
    for prompt in _program_prompts(backend.tokenizer, 6):
        backend.generate(GenerationRequest(prompt, None, GenerationParams(max_new_tokens=2)))
    assert backend.prefix_cache.reused_tokens > 0 and len(backend.prefix_cache) == 2
    backend.close()


def _kv(tokens: list[int]):
    """States of one layer whose keys and values are the token ids, columns as positions."""
    column = torch.tensor(tokens, dtype=torch.float)[None, None, :, None]
    return ((column, column),)


def _tokens(states) -> list[int]:
    return states[0][0][0, 0, :, 0].long().tolist()


def test_lookup_serves_the_longest_shared_prefix_of_the_same_adapter_and_evicts_the_least_recent():
    cache = PrefixCache(max_entries=2)
    short, long = list(range(20)), list(range(30))
    assert cache.cached("a", short) == (0, None)
    cache.put("a", short, _kv(short), computed=20)
    count, states = cache.cached("a", long)
    assert count == 20 and _tokens(states) == short  # only the last 10 tokens are left to compute
    cache.put("a", long, _kv(long), computed=10)
    assert cache.cached("b", short) == (0, None)  # another adapter shares nothing
    cache.put("b", short, _kv(short), computed=20)
    assert len(cache) == 2 and cache.computed_tokens == 50  # the least recent entry ("a", short) is gone
    count, states = cache.cached("a", short)
    assert count == 20 and _tokens(states) == short  # the first columns of ("a", long)
    parted = list(range(25)) + [99, 98]  # parts from ("a", long) after 25 tokens: those are served
    assert cache.cached_length("a", parted) == 25
    reused = cache.reused_tokens
    count, states = cache.cached("a", parted)
    assert count == 25 and _tokens(states) == list(range(25)) and cache.reused_tokens == reused + 25
    few = list(range(MIN_PREFIX_TOKENS - 1)) + [77] * 5  # too few tokens in common to be worth an entry's states
    assert cache.cached("a", few) == (0, None) and cache.cached_length("a", few) == 0


def test_rows_joining_with_the_same_uncached_prefix_compute_it_once_in_a_step(tiny_model_dir):
    """The first time a program's calls arrive together, and when two configurations send the same
    prompt at once, the shared tokens run once: one row computes them in its step while the others
    wait a step for the cache, and no prefix gets a forward of its own."""
    backend = _backend(tiny_model_dir, {}, max_batch_size=16, max_wait_s=0.2)
    prompts = _program_prompts(backend.tokenizer, 4)
    ids = [backend.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    system = min(common_prefix_length(ids[0], other) for other in ids[1:])
    alone = [g.text for g in map(backend.generate, _requests(prompts, [None], 4))]
    fresh = _backend(tiny_model_dir, {}, max_batch_size=16, max_wait_s=0.2)
    forwards = []
    hook = fresh.torch_model.register_forward_hook(lambda *_: forwards.append(1))
    texts = _threaded(fresh, _requests(prompts + prompts, [None], 8))  # each prompt twice, all at once
    hook.remove()
    assert texts == alone + alone
    assert len(forwards) == len(fresh.batch_sizes)  # every forward was a step of the batch
    own = sum(len(row) - system for row in ids)  # each prompt's tokens past the system prompt, once
    assert 0 < fresh.prefix_cache.computed_tokens <= system + own
    backend.close()
    fresh.close()


def test_the_shared_length_leaves_each_row_a_token_and_skips_short_prefixes():
    cache = PrefixCache()
    prefix = list(range(100, 100 + MIN_PREFIX_TOKENS))
    assert PrefixCache().shared_lengths([prefix + [1]], ["a"]) == [0]  # a first row alone has nothing to share
    assert cache.shared_lengths([prefix + [1, 2], prefix + [1, 3]], ["a", "a"]) == [MIN_PREFIX_TOKENS + 1] * 2
    assert cache.shared_lengths([prefix + [1]], ["a"]) == [MIN_PREFIX_TOKENS]  # alone: shares with recent rows, keeps a token
    assert cache.shared_lengths([prefix + [1]], ["b"]) == [0]  # another adapter's prompts share no states
    assert cache.shared_lengths([prefix[:4] + [9], prefix[:4] + [8]], ["a", "a"]) == [0, 0]  # too short for an entry


def test_rows_of_several_programs_joining_together_each_share_their_own_system_prompt():
    """An evaluation going item by item sends every program's call on one item at once: the rows have
    only the chat template's first tokens in common, and each program's prefix with its own kind."""
    template = [1, 2, 3]
    first, second = list(range(100, 140)), list(range(200, 260))
    rows = [template + first + [7], template + second + [7], template + first + [8], template + second + [9]]
    assert PrefixCache().shared_lengths(rows, ["base"] * 4) == [3 + 40, 3 + 60, 3 + 40, 3 + 60]


def test_an_evaluation_of_several_programs_item_by_item_reuses_each_system_prompt(tiny_model_dir):
    backend = _backend(tiny_model_dir, {}, max_batch_size=16, max_wait_s=0.05)
    # two programs whose system prompts part early (their first input field)
    signatures = [dspy.Predict("question -> answer").signature, dspy.Predict("query -> answer").signature]

    def run(items: range) -> int:
        """Every program's call on each item, item-major as ax.evals.runner sends them; the prompts' tokens."""
        prompts = [render_chat(backend.tokenizer, dspy.ChatAdapter().format(
            s, [], {next(iter(s.input_fields)): f"who pays {i}?"})) for i in items for s in signatures]
        _threaded(backend, [GenerationRequest(p, None, GenerationParams(max_new_tokens=2)) for p in prompts])
        return sum(len(backend.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)

    run(range(6))
    fed = backend.fed_tokens
    total = run(range(6, 12))
    # each row is served its own program's prefix: sharing only what all rows have in common fed nearly all
    assert backend.fed_tokens - fed < 0.2 * total
    backend.close()


def test_groups_whose_common_prefix_runs_into_their_own_text_still_share_the_system_prompt(tiny_model_dir):
    """Rows joining together share a prefix reaching into their texts' common first words; the next
    group's texts start otherwise, and its rows must still be served the system prompt's states."""
    backend = _backend(tiny_model_dir, {}, max_batch_size=16, max_wait_s=0.05)
    signature = dspy.Predict("text -> label").signature
    prompts = {opening: [render_chat(backend.tokenizer, dspy.ChatAdapter().format(
        signature, [], {"text": f"{opening} sentence number {i} is here"})) for i in range(4)]
        for opening in ("Alpha", "Beta", "Gamma")}
    firsts = [backend.tokenizer(p[0], add_special_tokens=False)["input_ids"] for p in prompts.values()]
    system = min(common_prefix_length(firsts[0], other) for other in firsts[1:])
    _threaded(backend, [GenerationRequest(p, None, GenerationParams(max_new_tokens=2)) for p in prompts["Alpha"]])
    before = backend.prefix_cache.computed_tokens
    for opening in ("Beta", "Gamma"):
        _threaded(backend, [GenerationRequest(p, None, GenerationParams(max_new_tokens=2)) for p in prompts[opening]])
    assert system > 2 * MIN_PREFIX_TOKENS
    assert backend.prefix_cache.computed_tokens - before < system  # the system prompt was not run again
    backend.close()
