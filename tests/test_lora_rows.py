"""Each adapter's LoRA on its own run of rows (ax/inference/lora_rows.py) against PEFT's mixed-adapter batches."""

import pytest
import torch

from ax.inference.generation import GenerationParams, GenerationRequest
from ax.inference.local import LocalBackend
from ax.inference.lora_rows import LoraRows, runs_of
from ax.model import load_model


def test_runs_of_groups_consecutive_names():
    assert runs_of(["__base__", "a", "a", "b", "a"]) == [("__base__", 0, 1), ("a", 1, 3), ("b", 3, 4), ("a", 4, 5)]
    assert runs_of([]) == []


def _peft_model(tiny_model_dir, tiny_adapters):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tiny_adapters["alpha"]),
                                      adapter_name="alpha")
    model.load_adapter(str(tiny_adapters["beta"]), adapter_name="beta")
    return model.eval()


def test_runs_give_pefts_mixed_batch_logits(tiny_model_dir, tiny_adapters):
    model = _peft_model(tiny_model_dir, tiny_adapters)
    names = ["__base__", "alpha", "alpha", "beta", "beta", "beta", "__base__"]
    ids = torch.randint(0, model.config.vocab_size, (len(names), 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(input_ids=ids, adapter_names=names).logits
        rows = LoraRows(model)
        assert rows.serves(names)
        with rows.runs(names):
            got = model(input_ids=ids).logits
        after = model(input_ids=ids, adapter_names=names).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got[1] - got[0]).abs().max() > 1e-3 and (got[3] - got[1]).abs().max() > 1e-3, "adapters must differ"
    torch.testing.assert_close(after, expected, rtol=0, atol=0)  # PEFT's forward is back after the block


def test_an_adapter_with_a_variant_keeps_pefts_path(tiny_model_dir, tiny_adapters, tmp_path):
    from tiny_model import make_tiny_adapter

    model = _peft_model(tiny_model_dir, tiny_adapters)
    model.load_adapter(str(make_tiny_adapter(tiny_model_dir, tmp_path / "dora", seed=3, dora=True)), adapter_name="dora")
    rows = LoraRows(model)
    assert rows.serves(["__base__", "alpha", "beta"]) and not rows.serves(["dora"])


@pytest.mark.parametrize("settings", [dict(target_modules=["q_proj"], modules_to_save=["lm_head"]),
                                      dict(target_modules=["q_proj", "embed_tokens"])])
def test_modules_to_save_and_other_lora_layers_keep_pefts_path(tiny_model_dir, settings):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=4, **settings)).eval()
    assert not LoraRows(model).serves(["__base__", "default"])


def test_the_backend_answers_mixed_batches_without_pefts_index_gather(tiny_model_dir, tiny_adapters, monkeypatch):
    from peft.tuners.lora.layer import LoraLayer

    single = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=1)
    batched = LocalBackend(load_model(str(tiny_model_dir)), max_batch_size=6, max_wait_s=0.2)
    for backend in (single, batched):
        for name, path in tiny_adapters.items():
            backend.load_adapter(name, path)
    requests = [GenerationRequest(f"Question {i}: what binds clause {i % 3}?", [None, "alpha", "beta"][i % 3],
                                  GenerationParams(max_new_tokens=8)) for i in range(6)]
    expected = [single.generate(r).text for r in requests]
    monkeypatch.setattr(LoraLayer, "_mixed_batch_forward", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    futures = [batched.batcher.submit(r) for r in requests]
    assert [f.result(timeout=60).text for f in futures] == expected
    assert max(batched.batch_sizes) > 1
    single.close()
    batched.close()
