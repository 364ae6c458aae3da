"""Where a batch of the client benchmark spends its time: prefill and decode steps at batch 1 and 8.

Same model and prompts as bench/client_throughput.py (DSPy's ChatAdapter prompt for each
question). Timed with plain forward calls, each the median of --repeats:
  prefill    the whole prompt, and only the tokens after the prompts' longest common prefix
             (what is left to prefill once the prefix cache holds the shared system prompt)
  decode     one greedy step with the KV cache of the prompts, at batch 1 and batch 8

    python bench/decode_cost.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import dspy
import torch
from client_throughput import questions
from transformers import DynamicCache

from ax.client.cpu_kernels import pack_linear_layers
from ax.client.kv_cache import reserved_cache
from ax.client.prefix_cache import common_prefix_length
from ax.client.prompting import render_chat
from ax.model import load_model


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    loaded = load_model(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    packed = load_model(args.model).model
    pack_linear_layers(packed)
    signature = dspy.Predict("question -> answer").signature
    rows = [tokenizer(render_chat(tokenizer, dspy.ChatAdapter().format(signature, [], {"question": q})),
                      add_special_tokens=False)["input_ids"] for q in questions(8)]
    shared = min(common_prefix_length(rows[0], row) for row in rows[1:])
    width = min(len(row) for row in rows)  # equal lengths, so no padding enters the timings
    ids = torch.tensor([row[:width] for row in rows], device=model.device)
    print(f"model={loaded.name} torch_threads={torch.get_num_threads()} prompt tokens {width} (first {width} of "
          f"{min(len(r) for r in rows)}-{max(len(r) for r in rows)}), shared prefix {shared}; "
          f"median of {args.repeats}")
    prefix = model(ids[:1, :shared], use_cache=True).past_key_values
    for batch in (1, 8):
        full = timed(lambda: model(ids[:batch]), args.repeats)
        own = timed(lambda: model(ids[:batch, shared:], past_key_values=DynamicCache(
            [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in
             ((layer.keys, layer.values) for layer in prefix.layers)], config=model.config)), args.repeats)
        cache = model(ids[:batch], use_cache=True).past_key_values
        states = [(layer.keys, layer.values) for layer in cache.layers]
        step = ids[:batch, -1:]
        rooms = [tuple(torch.cat([t, t[..., :1, :]], dim=-2) for t in layer) for layer in states]
        dynamic, reserved = DynamicCache(states, config=model.config), reserved_cache(model.config, rooms, width)

        def dynamic_step(on=model):  # back to the prompt's states; the step concatenates the next column
            for layer, (keys, values) in zip(dynamic.layers, states):
                layer.keys, layer.values = keys, values
            on(step, past_key_values=dynamic)

        def reserved_step(on=model):  # the room's first `width` columns hold the prompt; the step writes the next
            for layer, room in zip(reserved.layers, rooms):
                layer.adopt(*room, used=width)
            on(step, past_key_values=reserved)

        decode = {"dynamic": timed(dynamic_step, args.repeats), "reserved": timed(reserved_step, args.repeats),
                  "reserved+packed": timed(lambda: reserved_step(packed), args.repeats)}
        steps = ", ".join(f"{name} {ms * 1000:5.0f} ms ({ms * 1000 / batch:5.1f} per row)" for name, ms in decode.items())
        print(f"batch {batch}: prefill whole prompts {full * 1000:7.0f} ms, only the unshared "
              f"{width - shared} tokens {own * 1000:6.0f} ms; one decode step: {steps}")


if __name__ == "__main__":
    main()
