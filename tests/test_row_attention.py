"""One forward for rows fed different numbers of tokens gives each row what its own forward gives alone."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, DynamicCache

from ax.inference.kv_cache import Rooms
from ax.inference.row_attention import _groups, forward_rows
from tiny_model import cache_argument, prefilled

SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=96, max_position_embeddings=256, initializer_range=0.5)
MODELS = {  # Llama (SDPA, query heads sharing key heads), Mistral (every layer windowed), Gemma 2 (eager
    # attention with soft-capping, alternate layers windowed)
    "llama": ("LlamaConfig", SHAPES),
    "mistral": ("MistralConfig", dict(sliding_window=4, **SHAPES)),
    "gemma2": ("Gemma2Config", dict(head_dim=16, sliding_window=4, **SHAPES)),
}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    class_name, settings = MODELS[request.param]
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(getattr(transformers, class_name)(**settings)).eval()


def _alone(model, past: list[int], fed: list[int]) -> torch.Tensor:
    """The logits after each fed token, from the model's own forward of this row alone."""
    cache = DynamicCache(config=model.config)
    if past:
        model(input_ids=torch.tensor([past]), use_cache=True, **{cache_argument(model): cache})
    positions = torch.arange(len(past), len(past) + len(fed))[None]
    return model(input_ids=torch.tensor([fed]), position_ids=positions, use_cache=True,
                 **{cache_argument(model): cache}).logits[0]


@torch.inference_mode()
def test_rows_of_any_lengths_and_counts_compute_what_each_computes_alone(model):
    torch.manual_seed(1)
    pasts = [torch.randint(0, 96, (n,)).tolist() for n in (9, 0, 3, 12)]
    feds = [torch.randint(0, 96, (n,)).tolist() for n in (1, 70, 3, 90)]  # two joining prompts among decoding rows
    slots = [0, 2, 3, 5]  # slots 1 and 4 hold rows that feed nothing this step
    rooms = Rooms()
    rooms.reserve(6, 110)
    for slot, past in zip(slots, pasts):
        if past:  # every column, as the client's prefixes keep them (a sliding cache drops the oldest)
            cache = prefilled(model, past)
            rooms.write(slot, tuple((layer.keys, layer.values) for layer in cache.layers))
    # Logits after each row's every fed token but the joining rows' first 69 and 88.
    wanted = [0, 70, 71, 72, 73, 162, 163]
    own = model.config._attn_implementation
    got = forward_rows(model, rooms, slots, [len(p) for p in pasts], feds, wanted)
    expected = torch.cat([_alone(model, p, f) for p, f in zip(pasts, feds)])[wanted]
    assert got.shape == (len(wanted), 96)
    assert torch.allclose(got, expected, atol=1e-4)
    assert model.config._attn_implementation == own  # the model's own again afterwards


def test_rows_are_grouped_by_count_with_runs_of_slots_where_few_are_idle():
    groups = _groups(slots=[0, 2, 3, 9], lengths=[5, 7, 2, 0], counts=[1, 3, 2, 40], device=torch.device("cpu"))
    decoding, joining = groups
    assert decoding.slots == slice(0, 4) and decoding.width == 3  # slot 1 a dummy: cheaper than gathering
    assert decoding.counts.tolist() == [1, 1, 3, 2] and decoding.lengths.tolist() == [5, 0, 7, 2]
    assert decoding.tokens.tolist() == [0, 1, 2, 3, 4, 5] and decoding.columns == 10
    assert joining.slots == slice(9, 10) and joining.width == 40 and joining.tokens.tolist() == list(range(6, 46))
    prompts = _groups(slots=[0, 1, 2], lengths=[4, 9, 0], counts=[100, 70, 1], device=torch.device("cpu"))
    assert [(g.width, g.columns) for g in prompts] == [(1, 1), (70, 79), (100, 104)]  # each prompt at its own width
    spread = _groups(slots=[0, 7], lengths=[1, 1], counts=[1, 1], device=torch.device("cpu"))
    assert len(spread) == 1 and spread[0].slots.tolist() == [0, 7]  # mostly idle between: gathered
