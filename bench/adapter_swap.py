"""Cost of adapters in the client: loading one onto the shared base, and switching between them per call.

    python bench/adapter_swap.py [--model smollm2] [--rank 16]

Makes random LoRA adapters (rank --rank on every attention and MLP projection) for the model,
then prints: time to load an adapter onto the running base model, and the mean latency of
the same short generation when consecutive calls stay on one adapter vs. alternate between
two adapters and the base (a switch on every call), with the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ax.client.generation import GenerationParams, GenerationRequest
from ax.client.prompting import render_chat
from ax.inference.local import LocalBackend
from ax.model import load_model


def random_adapter(loaded, path: Path, rank: int, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(loaded.directory)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets,
                                     init_lora_weights=False)).save_pretrained(path)
    return path


def mean_latency(backend: LocalBackend, prompt: str, adapters: list[str | None], calls: int) -> float:
    times = []
    for i in range(calls):
        started = time.perf_counter()
        backend.generate(GenerationRequest(prompt, adapters[i % len(adapters)], GenerationParams(max_new_tokens=8)))
        times.append(time.perf_counter() - started)
    return statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--calls", type=int, default=12)
    args = parser.parse_args()
    loaded = load_model(args.model)
    backend = LocalBackend(loaded, max_batch_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [random_adapter(loaded, Path(tmp) / f"a{i}", args.rank, seed=i) for i in range(2)]
        load_times = []
        for i, path in enumerate(paths):
            started = time.perf_counter()
            backend.load_adapter(f"a{i}", path)
            load_times.append(time.perf_counter() - started)
        prompt = render_chat(loaded.tokenizer, [{"role": "user", "content": "Which party does the clause bind?"}])
        mean_latency(backend, prompt, ["a0"], 2)  # warm-up
        same = mean_latency(backend, prompt, ["a0"], args.calls)
        switching = mean_latency(backend, prompt, ["a0", "a1", None], args.calls)
    print(f"model={loaded.name} rank={args.rank} device={loaded.device}")
    print(f"adapter load onto the running base: first {load_times[0]:.2f} s, second {load_times[1]:.2f} s")
    print(f"8-token call, same adapter each call   : {same * 1000:7.1f} ms")
    print(f"8-token call, switching adapter per call: {switching * 1000:7.1f} ms")
    print(f"ratio (switching / same): {switching / same:.2f}x")
    backend.close()


if __name__ == "__main__":
    main()
