"""Loading base models: sources, device/dtype choice, fingerprints, and errors a user can act on."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import ax.model as model_module
from ax.errors import AxError
from ax.model import dtype_change, load_model, pick_device, pick_dtype, resolve


def test_hf_directory_loads_with_a_stable_fingerprint(tiny_model_dir):
    first = load_model(str(tiny_model_dir))
    second = load_model(str(tiny_model_dir))
    assert first.device == pick_device() and first.dtype == pick_dtype(first.device)
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 16


def test_fingerprint_follows_weights_not_path(tiny_model_dir, tmp_path):
    from tiny_model import make_tiny_model

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    other = make_tiny_model(tmp_path / "other", seed=5)
    assert load_model(str(copy)).fingerprint == load_model(str(tiny_model_dir)).fingerprint
    assert load_model(str(other)).fingerprint != load_model(str(tiny_model_dir)).fingerprint


def test_fingerprint_ignores_the_transformers_version_that_wrote_the_config(tiny_model_dir, tmp_path):
    import json

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    config_path = copy / "config.json"
    config = json.loads(config_path.read_text())
    config["transformers_version"] = "5.0.0"
    config_path.write_text(json.dumps(config, indent=4))
    assert load_model(str(copy)).fingerprint == load_model(str(tiny_model_dir)).fingerprint
    config["rms_norm_eps"] = 0.5  # any other change is another model
    config_path.write_text(json.dumps(config))
    assert load_model(str(copy)).fingerprint != load_model(str(tiny_model_dir)).fingerprint


def test_dtype_is_chosen_by_device_and_can_be_set(monkeypatch):
    monkeypatch.delenv("AX_DTYPE", raising=False)
    assert pick_dtype("cuda") == torch.bfloat16
    for native, default in ((True, torch.bfloat16), (False, torch.float32)):  # bf16 where the CPU computes it natively
        monkeypatch.setattr("ax.model.native_cpu_bf16", lambda native=native: native)
        assert pick_dtype("cpu") == default
    monkeypatch.setenv("AX_DTYPE", "float32")  # the environment's choice, under an explicit one
    assert pick_dtype("cpu") == pick_dtype("cuda") == torch.float32 and pick_dtype("cpu", "bf16") == torch.bfloat16
    monkeypatch.setenv("AX_DTYPE", "fp8")
    with pytest.raises(AxError, match=r"Unknown dtype 'fp8' \(--dtype, ax.LM\(dtype=...\) or \$AX_DTYPE\)"):
        pick_dtype("cpu")
    assert pick_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(AxError, match="Unknown dtype 'fp8'"):
        pick_dtype("cpu", "fp8")


def test_a_store_made_in_another_dtype_says_which_dtype_matches_it(tiny_model_dir):
    fp32, bf16 = (load_model(str(tiny_model_dir), dtype=d).answer_fingerprint for d in ("float32", "bfloat16"))
    assert bf16 == f"{fp32}-bfloat16"  # fp32 keeps the bare weights fingerprint of stores made before bf16
    assert "pass --dtype float32" in dtype_change(fp32, bf16) and "pass --dtype bfloat16" in dtype_change(bf16, fp32)
    assert dtype_change(fp32, fp32) == dtype_change("0123abcd", bf16) == dtype_change("model:gpt-4o", "model:gpt-4o-mini") == ""


def test_missing_paths_are_named(tmp_path):
    with pytest.raises(AxError, match="GGUF model file not found: .*missing.gguf"):
        resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(AxError, match="not found"):
        resolve(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AxError, match="has no config.json"):
        resolve(str(tmp_path / "empty"))


def test_hub_ids_resolve_as_hub_sources():
    source = resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert source.kind == "hub" and source.location == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_gguf_without_the_gguf_package_says_how_to_fix(tmp_path, monkeypatch):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setattr(model_module.importlib_util, "find_spec", lambda name: None if name == "gguf" else 1)
    with pytest.raises(AxError, match="pip install gguf"):
        model_module.convert_gguf(path, tmp_path / "out")


def test_corrupt_weights_are_reported(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AxError, match="corrupt or incomplete"):
        load_model(str(broken))


def test_corrupt_gguf_is_reported(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"this is not gguf")
    with pytest.raises(AxError, match="Could not read GGUF file .*bad.gguf"):
        load_model(str(path))


def test_a_gguf_is_converted_once_when_processes_ask_together(tmp_path, monkeypatch):
    """Workers of `ax compare --workers` load the embedded GGUF at once: one converts, the rest wait and
    load its directory, which nobody replaces while they read it."""
    monkeypatch.setenv("AX_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    calls = []

    def slow_convert(path, out_dir):
        calls.append(path)
        time.sleep(0.2)  # long enough for every other thread to find no config.json yet
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(model_module, "convert_gguf", slow_convert)
    source = model_module.ModelSource(kind="gguf", location=str(gguf), name="model")
    with ThreadPoolExecutor(4) as pool:
        targets = list(pool.map(lambda _: model_module.local_directory(source), range(4)))
    assert len(calls) == 1 and len(set(targets)) == 1 and (targets[0] / "config.json").is_file()
