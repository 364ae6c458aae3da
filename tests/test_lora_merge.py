"""Merging on the tiny model: folding into the base, and combining adapters (rsLoRA handled, DoRA refused)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_lora_store import IDS, logits_of, random_adapter, save

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.merge import MERGED_RECORD, merge_adapters, merge_into_base
from ax.adapters.peft_model import attach_lora
from ax.errors import AxError
from ax.model import load_model

LAYER = "base_model.model.model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def stored(tiny_model_dir, tmp_path_factory):
    """Two random rsLoRA adapters (r=4) in a store."""
    root = tmp_path_factory.mktemp("store")
    for name, seed in (("legal", 1), ("finance", 2)):
        base, model = random_adapter(tiny_model_dir, seed)
        save(model, base, root / name)
    return root


def delta(adapter_dir, layer=LAYER) -> torch.Tensor:
    """The weight update an adapter adds to one layer, with its own scaling."""
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / (config["r"] ** 0.5 if config["use_rslora"] else config["r"])
    return scale * weights[f"{layer}.lora_B.weight"] @ weights[f"{layer}.lora_A.weight"]


@pytest.mark.parametrize("method", ["linear", "cat", "svd", "ties", "dare_linear"])
def test_merging_one_rslora_adapter_gives_it_back(tiny_model_dir, stored, tmp_path, method):
    """PEFT alone makes this sqrt(r) times too strong (peft#3761); ax loads rsLoRA as equivalent plain LoRA."""
    merge_adapters(load_model(str(tiny_model_dir)), {"legal": stored / "legal"}, tmp_path / "only-legal",
                   weights=[1.0], combination_type=method)
    torch.testing.assert_close(logits_of(tiny_model_dir, tmp_path / "only-legal"),
                               logits_of(tiny_model_dir, stored / "legal"))


def test_cat_merge_is_the_weighted_sum_of_updates(tiny_model_dir, stored, tmp_path):
    manifest = merge_adapters(load_model(str(tiny_model_dir)), {"legal": stored / "legal", "finance": stored / "finance"},
                              tmp_path / "both", weights=[0.7, 0.3])
    expected = 0.7 * delta(stored / "legal") + 0.3 * delta(stored / "finance")
    torch.testing.assert_close(delta(tmp_path / "both"), expected, atol=1e-6, rtol=1e-5)
    assert manifest.combination_type == "cat" and manifest.domain == "legal+finance"
    assert [(s.name, s.weight) for s in manifest.merged_from] == [("legal", 0.7), ("finance", 0.3)]

    both = logits_of(tiny_model_dir, tmp_path / "both")
    for source in ("legal", "finance"):
        assert not torch.allclose(both, logits_of(tiny_model_dir, stored / source), atol=1e-3)


@pytest.mark.parametrize("method", ["ties", "dare_ties"])
def test_sparsifying_merges_keep_part_of_each_update(tiny_model_dir, stored, tmp_path, method):
    merge_adapters(load_model(str(tiny_model_dir)), {"legal": stored / "legal", "finance": stored / "finance"},
                   tmp_path / "m", weights=[1.0, 1.0], combination_type=method, density=0.5)
    merged = delta(tmp_path / "m")
    assert torch.isfinite(merged).all() and merged.abs().sum() > 0
    assert not torch.allclose(merged, delta(stored / "legal") + delta(stored / "finance"), atol=1e-4)


def test_rank_mismatch_and_dora_are_refused(tiny_model_dir, stored, tmp_path):
    base = load_model(str(tiny_model_dir))
    wide = attach_lora(base.model, LoraTrainingConfig(r=8))
    save(wide, base, tmp_path / "wide")
    with pytest.raises(AxError, match=r"equal rank.*'legal': 4.*'wide': 8"):
        merge_adapters(load_model(str(tiny_model_dir)), {"legal": stored / "legal", "wide": tmp_path / "wide"},
                       tmp_path / "m", combination_type="linear")

    base = load_model(str(tiny_model_dir))
    save(attach_lora(base.model, LoraTrainingConfig(use_dora=True)), base, tmp_path / "dora")
    with pytest.raises(AxError, match="uses DoRA"):
        merge_adapters(load_model(str(tiny_model_dir)), {"dora": tmp_path / "dora"}, tmp_path / "m")
    with pytest.raises(AxError, match="Unknown combination_type 'average'"):
        merge_adapters(base, {"legal": stored / "legal"}, tmp_path / "m", combination_type="average")


def test_folding_into_the_base_gives_a_plain_model_with_the_adapters_output(tiny_model_dir, stored, tmp_path):
    from transformers import AutoModelForCausalLM

    out = merge_into_base(load_model(str(tiny_model_dir)), stored / "legal", tmp_path / "legal-full")
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=IDS).logits, logits_of(tiny_model_dir, stored / "legal"),
                                   atol=1e-4, rtol=1e-4)
    assert json.loads((out / MERGED_RECORD).read_text())["adapter"] == "legal"
    assert (out / "tokenizer.json").is_file() and not (out / "adapter_config.json").exists()


def test_merging_onto_another_base_is_refused(tiny_model_dir, stored, tmp_path):
    base = load_model(str(tiny_model_dir))
    base.fingerprint = "ffffffffffffffff"
    with pytest.raises(AxError, match="trained on base model"):
        merge_into_base(base, stored / "legal", tmp_path / "x")
