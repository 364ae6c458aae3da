"""The pieces under the local backend's decoding: packed CPU weights and the KV rooms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ax.inference.cpu_kernels import PackedLinear, cpu_packing_available, pack_linear_layers
from ax.inference.kv_cache import Rooms

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


@needs_packing
def test_packed_products_run_on_a_bounded_set_of_row_counts(monkeypatch):
    from ax.inference import cpu_kernels

    seen = []
    real = torch.ops.mkldnn._linear_pointwise

    class Recorder:  # torch.ops namespaces are read-only; stand in for the one the layer calls
        _reorder_linear_weight = torch.ops.mkldnn._reorder_linear_weight

        @staticmethod
        def _linear_pointwise(x, *args):
            seen.append(x.shape[0])
            return real(x, *args)

    monkeypatch.setattr(cpu_kernels.torch.ops, "mkldnn", Recorder, raising=False)
    torch.manual_seed(0)
    layer = nn.Linear(24, 40)
    pack_linear_layers(layer)
    with torch.inference_mode():
        for rows in range(1, 200):
            x = torch.randn(rows, 24)
            assert torch.allclose(layer(x), nn.functional.linear(x, layer.weight, layer.bias), atol=1e-5)
    assert len(set(seen)) == 22 and max(seen) == cpu_kernels.PACKED_MAX_ROWS  # prefill-sized products unpacked
    assert [cpu_kernels.padded_rows(n) for n in (1, 16, 17, 24, 25, 64)] == [1, 16, 24, 24, 32, 64]


def test_only_fp32_cpu_linears_are_packed():
    model = nn.Sequential(nn.Linear(4, 4).to(torch.float64), nn.Linear(4, 4))
    packed = pack_linear_layers(model)
    assert type(model[0]) is nn.Linear
    assert packed == (1 if cpu_packing_available() else 0)


def test_rooms_keep_what_they_hold_when_they_grow_and_hand_back_copies():
    rooms = Rooms()
    rooms.reserve(slots=1, capacity=3)
    states = tuple((torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)) for _ in range(2))
    rooms.write(0, states)
    keys, _ = rooms.layer(1, states[0][0])
    assert keys.shape == (1, 2, 64, 4)  # capacity in steps of 64 columns
    rooms.reserve(slots=3, capacity=100)  # a third row with a longer answer joins
    keys, values = rooms.layer(1, states[0][0])
    assert keys.shape == (3, 2, 128, 4)
    assert torch.equal(keys[0, :, :3], states[1][0][0]) and torch.equal(values[0, :, :3], states[1][1][0])
    assert not keys[1:].any() and not keys[0, :, 3:].any()  # never uninitialized: masked columns still enter softmax
    copies = rooms.read(0, 2)
    assert len(copies) == 2 and torch.equal(copies[0][0], states[0][0][..., :2, :])
    copies[0][0].zero_()
    assert torch.equal(rooms.layer(0, keys)[0][0, :, :3], states[0][0][0])
