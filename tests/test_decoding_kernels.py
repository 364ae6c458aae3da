"""The pieces under the local backend's decoding: packed CPU weights and the reserved KV cache."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from transformers import LlamaConfig
from transformers.cache_utils import DynamicLayer

from ax.client.cpu_kernels import PackedLinear, cpu_packing_available, pack_linear_layers
from ax.client.kv_cache import ReservedLayer, cache_argument, full_cache, reserved_cache

needs_packing = pytest.mark.skipif(not cpu_packing_available(), reason="this torch build has no oneDNN linear")


@needs_packing
def test_packed_layers_compute_what_nn_linear_does_and_follow_weight_changes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), nn.Linear(40, 8, bias=False))
    x = torch.randn(3, 5, 24)
    with torch.inference_mode():
        expected = model(x)
    assert pack_linear_layers(model) == 2 and all(isinstance(m, PackedLinear) for m in (model[0], model[2]))
    with torch.inference_mode():
        assert torch.allclose(model(x), expected, atol=1e-5)
        model[2].weight.mul_(2)  # an in-place change is packed again before the next use
        assert torch.allclose(model(x), expected * 2, atol=1e-5)
    # With gradients on, a layer computes with its own weight, so training still works.
    model[0].weight.requires_grad_(True)
    model(x).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


def test_only_fp32_cpu_linears_are_packed():
    model = nn.Sequential(nn.Linear(4, 4).to(torch.float64), nn.Linear(4, 4))
    packed = pack_linear_layers(model)
    assert type(model[0]) is nn.Linear
    assert packed == (1 if cpu_packing_available() else 0)


def test_a_reserved_layer_holds_what_concatenation_would_even_past_its_capacity():
    reference, reserved = DynamicLayer(), ReservedLayer(capacity=0)
    start = torch.randn(2, 3, 4, 8)
    room = tuple(torch.empty(2, 3, 6, 8) for _ in range(2))
    room[0][..., :4, :].copy_(start)
    room[1][..., :4, :].copy_(-start)
    reserved.adopt(*room, used=4)
    reference.update(start, -start)
    for _ in range(5):  # the room holds 6 columns: the third step outgrows it
        new = torch.randn(2, 3, 1, 8)
        expected = reference.update(new, -new)
        got = reserved.update(new, -new)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert reserved.get_seq_length() == 9


def test_a_reserved_cache_starts_from_its_rooms_and_keeps_sliding_window_layers_whole():
    from transformers import MistralConfig

    shape = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=32)
    rooms = [tuple(torch.randn(1, 1, 5, 8) for _ in range(2)) for _ in range(2)]
    full = reserved_cache(LlamaConfig(**shape), rooms, used=3)
    assert all(type(layer) is ReservedLayer for layer in full.layers)
    assert torch.equal(full.layers[1].keys, rooms[1][0][..., :3, :])
    # Rows side by side need one width: a window of 2 is applied by the masks, not by dropping columns.
    windowed = MistralConfig(sliding_window=2, **shape)
    assert all(type(layer) is ReservedLayer for layer in reserved_cache(windowed, rooms, used=3).layers)
    states = full_cache(windowed, [(keys[..., :3, :], values[..., :3, :]) for keys, values in rooms])
    assert states.get_seq_length() == 3 and not any(states.is_sliding)


def test_the_cache_goes_by_the_keyword_the_installed_model_takes(tiny_model_dir):
    from transformers import AutoModelForCausalLM, DynamicCache

    class OlderModel(nn.Module):  # transformers before `cache` replaced `past_key_values`
        def forward(self, input_ids, past_key_values=None, use_cache=None):
            return input_ids

    class NewerModel(nn.Module):
        def forward(self, input_ids, cache=None, use_cache=None):
            return input_ids

    assert cache_argument(OlderModel()) == "past_key_values" and cache_argument(NewerModel()) == "cache"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cache = DynamicCache(config=model.config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # a deprecated keyword warns, and goes in a later release
        model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True, **{cache_argument(model): cache})
    assert cache.get_seq_length() == 3
