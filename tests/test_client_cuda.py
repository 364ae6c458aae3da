"""The client's CUDA path: bf16 by default, batched mixed-adapter generation on the GPU. Skipped without CUDA."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
import torch

from ax.client import Client
from ax.client.generation import GenerationParams, GenerationRequest
from ax.inference.local import LocalBackend
from ax.model import load_model

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_cuda_defaults_to_bf16_and_every_field_parses(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.device == "cuda" and loaded.dtype == torch.bfloat16
    backend = LocalBackend(loaded)
    lm = Client(backend, model_name="tiny", cache=False).lm(max_tokens=40)
    with dspy.context(lm=lm):
        prediction = dspy.Predict("question -> answer, count: int, ok: bool")(question="how many?")
    assert isinstance(prediction.count, int) and isinstance(prediction.ok, bool)
    backend.close()


def test_mixed_adapter_batches_on_gpu_match_single_calls_in_fp32(tiny_model_dir, tiny_adapters):
    # fp32 so that batched and single kernels agree to the last bit that decides argmax;
    # bf16 rounding can flip near-ties between batch shapes.
    def backend(batch):
        b = LocalBackend(load_model(str(tiny_model_dir), dtype="float32"), max_batch_size=batch, max_wait_s=0.05)
        for name, path in tiny_adapters.items():
            b.load_adapter(name, path)
        return b

    requests = [GenerationRequest(f"<|im_start|>user\ncase {i}<|im_end|>\n<|im_start|>assistant\n",
                                  [None, "alpha", "beta"][i % 3], GenerationParams(max_new_tokens=12))
                for i in range(24)]
    single, batched = backend(1), backend(16)
    expected = [single.generate(r).text for r in requests]
    with ThreadPoolExecutor(16) as pool:
        got = [g.text for g in pool.map(batched.generate, requests)]
    assert max(batched.batch_sizes) > 1
    assert got == expected
    single.close()
    batched.close()
