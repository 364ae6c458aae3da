"""LoRA layers sharing their input's low-rank products: PEFT's loss and gradients, eager and compiled."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.kernels.shared_lora_input import shared_lora_input
from ax.adapters.peft_model import attach_lora
from tiny_model import randomize_lora_b


def _randomize_b(model) -> None:
    torch.manual_seed(1)
    randomize_lora_b(model)


def _loss_and_grads(model, run) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = run()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same(got, expected) -> None:
    """Equal up to fp32 summation order (the stacked matmuls add in another order)."""
    torch.testing.assert_close(got[0], expected[0])
    errors = {name: ((got[1][name] - grad).norm() / grad.norm()).item() for name, grad in expected[1].items()}
    assert max(errors.values()) < 1e-4, errors


@pytest.fixture
def lora_model(tiny_model_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = attach_lora(base, LoraTrainingConfig(r=4, lora_alpha=8, lora_dropout=0.0))
    _randomize_b(model)
    return model.train()


def _causal_lm_loss(model):
    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    return lambda: model(input_ids=ids, labels=ids, use_cache=False).loss


@pytest.mark.parametrize("backend", [None, "aot_eager"])  # aot_eager: dynamo's tracing without a compiler
def test_shared_products_give_pefts_loss_and_gradients(lora_model, backend):
    run = _causal_lm_loss(lora_model)
    expected = _loss_and_grads(lora_model, run)
    members = [m for m in lora_model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A")]
    with shared_lora_input(lora_model) as groups:
        assert groups == 4  # q/k/v and gate/up of each of the 2 layers
        if backend:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            compiled = torch.compile(lora_model.get_base_model().model.layers[0], backend=backend)
            lora_model.get_base_model().model.layers[0].forward = compiled
        got = _loss_and_grads(lora_model, run)
        if backend:
            del lora_model.get_base_model().model.layers[0].forward
            assert not torch._dynamo.utils.counters["graph_break"]
    assert all("forward" not in m.__dict__ for m in members)
    _assert_same(got, expected)


def test_dropout_leaves_layers_alone(tiny_model_dir):
    model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraTrainingConfig(lora_dropout=0.1))
    with shared_lora_input(model) as groups:
        assert groups == 0


class _TwoInputs(torch.nn.Module):
    """q and v read one input, k another (as cross-attention does); v is narrower and has no bias."""

    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        self.v_proj = torch.nn.Linear(8, 5, bias=False)

    def forward(self, x, y):
        return torch.cat([self.q_proj(x) * self.k_proj(y), self.v_proj(x)], dim=-1)


def _check_against_peft(model, run, groups: int) -> None:
    expected = _loss_and_grads(model, run)
    with shared_lora_input(model) as found:
        assert found == groups
        got = _loss_and_grads(model, run)
    _assert_same(got, expected)


def test_a_member_called_on_another_input_computes_alone():
    torch.manual_seed(0)
    model = get_peft_model(_TwoInputs(), LoraConfig(r=2, target_modules=["q_proj", "k_proj", "v_proj"]))
    _randomize_b(model)
    x, y = torch.randn(3, 8), torch.randn(3, 8)
    _check_against_peft(model, lambda: model(x, y).square().sum(), groups=1)


def test_members_of_other_ranks_and_widths():
    """Each member's B sits at its own columns of the joined products, whatever the ranks before it, over
    bases of other widths, with a bias or without."""
    torch.manual_seed(0)
    config = LoraConfig(r=2, rank_pattern={"k_proj": 3}, target_modules=["q_proj", "k_proj", "v_proj"])
    model = get_peft_model(_TwoInputs(), config)
    _randomize_b(model)
    x = torch.randn(3, 8)
    _check_against_peft(model, lambda: model(x, x).square().sum(), groups=1)
