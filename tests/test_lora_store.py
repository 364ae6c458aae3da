"""The adapter store: PEFT format plus manifest, base checks, atomic replacement, list and delete."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ax import adapter_store as store
from ax.adapter_store import (
    adapter_fingerprint, check_base, delete_adapter, list_adapters, read_manifest, save_adapter,
)
from ax.adapters.config import LoraTrainingConfig
from ax.adapters.peft_model import attach_lora
from ax.errors import AxError
from ax.model import load_model
from tiny_model import randomize_lora_b

IDS = torch.tensor([[5, 17, 42, 99, 3]])


def random_adapter(model_dir, seed: int):
    """A LoRA whose B matrices are random, so it visibly changes the base model's output."""
    base = load_model(str(model_dir))
    torch.manual_seed(seed)
    model = attach_lora(base.model, LoraTrainingConfig(r=4, lora_alpha=8)).eval()
    randomize_lora_b(model, std=0.3)
    return base, model


def save(model, base, target, **fields):
    return save_adapter(model, target, domain="legal", base_name=base.name, base_fingerprint=base.fingerprint, **fields)


def logits_of(model_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter_dir).eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_manifest_and_fingerprint(tiny_model_dir, tmp_path):
    base, model = random_adapter(tiny_model_dir, 1)
    manifest = save(model, base, tmp_path / "legal", training_data_hash="abc", metrics={"eval_loss": 0.5})
    assert {"adapter_config.json", "adapter_model.safetensors", "ax_manifest.json"} <= {
        p.name for p in (tmp_path / "legal").iterdir()}
    assert read_manifest(tmp_path / "legal") == manifest
    assert manifest.adapter_fingerprint == adapter_fingerprint(tmp_path / "legal")
    assert manifest.base_model_fingerprint == base.fingerprint and manifest.domain == "legal"
    assert {"torch", "transformers", "peft"} <= set(manifest.package_versions)
    assert check_base(tmp_path / "legal", base.fingerprint, base.name) == manifest


def test_adapter_for_another_base_is_refused_naming_both(tiny_model_dir, tmp_path):
    base, model = random_adapter(tiny_model_dir, 1)
    save(model, base, tmp_path / "legal")
    with pytest.raises(AxError) as error:
        check_base(tmp_path / "legal", "0123456789abcdef", "SmolLM2-135M-Instruct")
    message = str(error.value)
    assert base.name in message and base.fingerprint in message
    assert "SmolLM2-135M-Instruct" in message and "0123456789abcdef" in message


def test_missing_or_corrupt_manifest_names_the_file(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(AxError, match=r"a/ax_manifest.json"):
        read_manifest(tmp_path / "a")
    (tmp_path / "a" / "ax_manifest.json").write_text("{not json")
    with pytest.raises(AxError, match=r"ax_manifest.json is corrupt"):
        read_manifest(tmp_path / "a")
    (tmp_path / "a" / "ax_manifest.json").write_text(json.dumps({"name": "a"}))
    with pytest.raises(AxError, match=r"corrupt: Field required at domain"):
        read_manifest(tmp_path / "a")


def test_a_crash_mid_save_keeps_the_old_adapter(tiny_model_dir, tmp_path, monkeypatch):
    old_base, old = random_adapter(tiny_model_dir, 1)
    save(old, old_base, tmp_path / "legal")
    old_logits = logits_of(tiny_model_dir, tmp_path / "legal")

    new_base, new = random_adapter(tiny_model_dir, 2)

    def die_after_weights(path):  # the weights are written; the process dies before the manifest
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "adapter_fingerprint", die_after_weights)
    monkeypatch.setattr(store.shutil, "rmtree", lambda *a, **k: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        save(new, new_base, tmp_path / "legal")
    monkeypatch.undo()

    assert any(p.name.startswith(".legal.staging-") for p in tmp_path.iterdir())  # the half-written copy
    assert [a.name for a in list_adapters(tmp_path)] == ["legal"]
    torch.testing.assert_close(logits_of(tiny_model_dir, tmp_path / "legal"), old_logits)

    save(new, new_base, tmp_path / "legal")  # a complete save replaces it
    assert not torch.allclose(logits_of(tiny_model_dir, tmp_path / "legal"), old_logits)


def test_a_crash_between_the_two_renames_is_repaired(tiny_model_dir, tmp_path):
    base, model = random_adapter(tiny_model_dir, 1)
    save(model, base, tmp_path / "legal")
    shutil.move(tmp_path / "legal", tmp_path / ".legal.old-1234abcd")  # old moved aside, new never arrived
    assert [a.name for a in list_adapters(tmp_path)] == ["legal"]
    assert read_manifest(tmp_path / "legal").domain == "legal"


def test_list_and_delete(tiny_model_dir, tmp_path):
    base, model = random_adapter(tiny_model_dir, 1)
    save(model, base, tmp_path / "legal")
    save(model, base, tmp_path / "finance")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "adapter_config.json").write_text("{}")
    (tmp_path / "not-an-adapter").mkdir()
    listed = {a.name: a for a in list_adapters(tmp_path)}
    assert sorted(listed) == ["broken", "finance", "legal"]
    assert listed["legal"].domain == "legal" and listed["legal"].base_model == base.name
    assert listed["broken"].manifest is None and "manifest not found" in listed["broken"].problem

    delete_adapter(tmp_path, "finance")
    assert sorted(a.name for a in list_adapters(tmp_path)) == ["broken", "legal"]
    with pytest.raises(AxError, match=r"No adapter named 'finance'.*\['broken', 'legal'\]"):
        delete_adapter(tmp_path, "finance")
    with pytest.raises(AxError, match="adapter name '../legal' must be lowercase"):
        delete_adapter(tmp_path, "../legal")
    assert list_adapters(tmp_path / "nowhere") == []


def test_default_root_is_in_the_ax_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("AX_CACHE_DIR", str(tmp_path))
    assert store.default_store_root() == tmp_path / "adapters"
