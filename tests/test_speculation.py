"""Prompt-lookup drafts: what they propose, how wide a step feeds them, and that they change no answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from ax.client.generation import GenerationParams, GenerationRequest
from ax.errors import AxError
from ax.inference.local import LocalBackend
from ax.inference.speculation import StepCosts, expected_tokens, lookup_draft
from ax.model import load_model


def test_a_draft_is_what_followed_the_latest_earlier_occurrence_of_the_last_tokens():
    context = [1, 2, 3, 9, 1, 2, 3, 7, 8, 5, 1, 2, 3]
    assert lookup_draft(context, 2) == [7, 8]  # the latest occurrence, not the first
    assert lookup_draft(context, 8) == [9, 1, 2, 3, 7, 8, 5, 1]  # the latest is followed by only 6
    assert lookup_draft([1, 2, 1, 2, 1, 2, 1, 2], 4) == [1, 2, 1, 2]  # a loop: its first turn runs on
    assert lookup_draft([4, 5, 6, 4, 5, 9, 6, 4, 5], 3) == [9, 6, 4]  # "6 4 5" never occurred: "4 5" did
    assert lookup_draft([1, 2, 3, 4, 5], 4) == []  # no earlier occurrence
    assert lookup_draft([7, 1, 7], 4) == []  # one token alone is no evidence
    assert lookup_draft(context, 0) == []


def test_expected_tokens_count_each_draft_token_with_the_chance_it_and_those_before_it_are_kept():
    assert expected_tokens([0, 0], width=1, acceptance=0.9) == 2
    assert expected_tokens([3, 0], width=3, acceptance=0.5) == pytest.approx(2 + 0.5 + 0.25)
    assert expected_tokens([3], width=8, acceptance=1.0) == 4  # a draft gives no more than its length


def test_the_step_width_follows_what_fed_tokens_cost():
    cpu, gpu = StepCosts(), StepCosts()
    assert cpu.best_width([4, 0, 0, 0], acceptance=0.3) == 5  # no fit yet: the widest, to learn the slope
    for tokens in (8, 16, 32, 64):
        cpu.record(tokens, 0.070 + 0.003 * tokens)  # 2 CPU cores: each fed token costs
        gpu.record(tokens, 0.020 + 0.00001 * tokens)  # a GPU: columns nearly free
    assert cpu.line() == pytest.approx((0.070, 0.003))
    lone_draft = [6, 0, 0, 0, 0, 0, 0, 0]
    # A row's draft costs its own tokens alone: on the CPU only its likeliest first tokens pay.
    assert cpu.best_width(lone_draft, acceptance=0.5) == 2
    assert cpu.best_width(lone_draft, acceptance=0.2) == 1
    assert gpu.best_width(lone_draft, acceptance=0.9) == 7
    assert cpu.best_width([6] * 8, acceptance=0.95) == 7  # every row copying: worth the tokens
    # A joining row's prompt fed in the same step makes it long, and a draft token a smaller part of it.
    assert cpu.best_width([6] * 8, acceptance=0.6) < cpu.best_width([6] * 8, acceptance=0.6, other_tokens=400)


def _copying_prompts(n: int) -> list[str]:
    return [f"<|im_start|>user\nsay it again: the tenant pays {i * 7} dollars, the tenant pays {i * 7} dollars, "
            f"the tenant pays<|im_end|>\n<|im_start|>assistant\n" for i in range(n)]


class _FreeColumns(StepCosts):
    def line(self) -> tuple[float, float]:
        return 1.0, 0.0


def _repeating_backend(model_dir, adapters: dict, draft_tokens: int) -> LocalBackend:
    """The tiny model with its layers' output projections zeroed: with tied embeddings each token
    then predicts itself, so the base model repeats tokens (drafts kept), while the adapters, whose
    LoRA sits on those same projections, write on (drafts refused). In fp32 on every device: in
    bf16 a step's width changes the rounding of every row's logits (the GPU's kernels differ by
    shape), and a sampled row's draw can follow it."""
    loaded = load_model(str(model_dir), dtype="float32")
    with torch.no_grad():
        for layer in loaded.model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    backend = LocalBackend(loaded, max_batch_size=8, max_wait_s=0.05, draft_tokens=draft_tokens)
    for name, path in adapters.items():
        backend.load_adapter(name, path)
    return backend


def test_drafted_answers_equal_undrafted_ones_for_mixed_adapters_and_constraints(tiny_model_dir, tiny_adapters):
    params = [GenerationParams(max_new_tokens=40), GenerationParams(max_new_tokens=5, constraint="int"),
              GenerationParams(max_new_tokens=24, stop=("pays",)), GenerationParams(max_new_tokens=3),
              GenerationParams(max_new_tokens=16, temperature=1.0, seed=4)]
    adapters = [None, "alpha", "beta"]
    requests = [GenerationRequest(p, adapters[i % 3], params[i % len(params)])
                for i, p in enumerate(_copying_prompts(15))]
    undrafted = _repeating_backend(tiny_model_dir, tiny_adapters, draft_tokens=0)
    drafted = _repeating_backend(tiny_model_dir, tiny_adapters, draft_tokens=6)
    drafted.step_costs = _FreeColumns()  # every draft fed whole, whatever this machine's timings say
    expected = [undrafted.generate(r).text for r in requests]
    assert len(set(expected)) > 8, "the rows should answer differently"
    with ThreadPoolExecutor(15) as pool:
        got = [g.text for g in pool.map(drafted.generate, requests)]
    assert got == expected
    assert max(drafted.batch_sizes) > 1
    assert drafted.accepted_tokens > 0, "no draft token was ever kept: the test checks nothing"
    assert drafted.drafted_tokens > drafted.accepted_tokens, "no draft token was ever refused"
    assert [drafted.generate(r).text for r in requests] == expected  # one at a time as well
    undrafted.close()
    drafted.close()


def test_a_negative_draft_size_is_refused_naming_it(tiny_model_dir):
    with pytest.raises(AxError, match="draft_tokens.*-2"):
        LocalBackend(load_model(str(tiny_model_dir)), draft_tokens=-2)
