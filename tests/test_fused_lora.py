"""The fused LoRA training path computes PEFT's loss and gradients, and leaves everything else to PEFT."""

from __future__ import annotations

import pytest
import torch

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.kernels.fused_lora import dropped_input, fused_lora
from ax.adapters.peft_model import attach_lora
from ax.model import load_model
from tiny_model import randomize_lora_b


def _lora_model(model_dir, device: str = "cpu", **settings):
    """The tiny model in fp32 with a LoRA adapter whose B matrices are non-zero (fresh ones are zero: no signal)."""
    base = load_model(str(model_dir), device=device, dtype="float32")
    model = attach_lora(base.model, LoraTrainingConfig(r=4, lora_alpha=8, **settings))
    torch.manual_seed(3)
    randomize_lora_b(model)
    return model


def _loss_and_grads(model, ids, seed: int = 0):
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _peft_loss_and_grads(model, ids, monkeypatch):
    """PEFT's own step, its dropout drawing the same elements as the fused path's (`dropped_input`)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            monkeypatch.setattr(module, "forward", lambda x, m=module: dropped_input(m, x, x.dtype))
    try:
        return _loss_and_grads(model, ids)
    finally:
        monkeypatch.undo()


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_step_matches_peft_loss_and_gradients(tiny_model_dir, dropout, device, monkeypatch):
    model = _lora_model(tiny_model_dir, device, lora_dropout=dropout).train()
    ids = torch.randint(0, 300, (3, 17), generator=torch.Generator().manual_seed(1)).to(device)
    loss, grads = _peft_loss_and_grads(model, ids, monkeypatch)
    with fused_lora(model) as count:
        fused_loss, fused_grads = _loss_and_grads(model, ids)
    assert count == 14  # seven projections in each of the tiny model's two blocks
    torch.testing.assert_close(fused_loss, loss)
    assert grads.keys() == fused_grads.keys() and len(grads) == 28
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_cpu_dropout_drops_each_element_alone_with_probability_p():
    dropout = torch.nn.Dropout(0.3).train()
    x = torch.randn(500, 301)
    torch.manual_seed(0)
    y = dropped_input(dropout, x, torch.bfloat16)
    kept = y != 0
    assert y.dtype == torch.bfloat16 and (x != 0).all(), "x is left as it was"
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.01
    torch.testing.assert_close(y[kept], (x / 0.7).to(torch.bfloat16)[kept])
    rows, columns = (~kept).float().mean(1), (~kept).float().mean(0)  # no row or column drops more than chance
    assert rows.max() < 0.3 + 0.15 and columns.max() < 0.3 + 0.15
    assert dropped_input(dropout.eval(), x, torch.float32).equal(x)


def test_fused_path_gives_every_layer_peft_forward_back(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    with fused_lora(model):
        assert all("forward" in vars(m) for m in model.modules() if type(m).__name__ == "Linear"
                   and hasattr(m, "lora_A"))
    assert not any("forward" in vars(m) for m in model.modules())


def test_disabled_adapters_and_dora_keep_peft_forward(tiny_model_dir):
    model = _lora_model(tiny_model_dir).eval()
    ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
        with fused_lora(model), model.disable_adapter():
            fused = model(input_ids=ids).logits
    torch.testing.assert_close(fused, plain)
    dora = _lora_model(tiny_model_dir, use_dora=True).eval()
    with fused_lora(dora) as count:
        assert count == 14  # DoRA layers are plain Linear modules with a variant: each call falls back
        with torch.no_grad():
            inside = dora(input_ids=ids).logits
    with torch.no_grad():
        torch.testing.assert_close(inside, dora(input_ids=ids).logits)


def test_fused_step_with_activation_checkpointing_matches_peft(tiny_model_dir, monkeypatch):
    model = _lora_model(tiny_model_dir).train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    ids = torch.randint(0, 300, (2, 11), generator=torch.Generator().manual_seed(5))
    loss, grads = _peft_loss_and_grads(model, ids, monkeypatch)
    with fused_lora(model):
        fused_loss, fused_grads = _loss_and_grads(model, ids)
    torch.testing.assert_close(fused_loss, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
