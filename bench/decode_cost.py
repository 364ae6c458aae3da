"""Where a batch of the client benchmark spends its time: prefill and decode steps at batch 1 and 8.

Same model and prompts as bench/client_throughput.py (DSPy's ChatAdapter prompt for each
question). Timed with plain forward calls, each the median of --repeats:
  prefill    the whole prompt, and only the tokens after the prompts' longest common prefix
             (what is left to prefill once the prefix cache holds the shared system prompt)
  decode     one greedy step with the KV cache of the prompts, at batch 1 and batch 8: through
             transformers' DynamicCache, and as the client runs it (ax/inference/row_attention.py:
             states written into reserved rooms), on plain and on oneDNN-packed weights
  joining    at batch 8, a step in which one of the rows is instead a joining row fed the
             unshared rest of its prompt, against that row's prefill alone plus a step of 7

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

from ax.client.prompting import render_chat
from ax.inference.cpu_kernels import pack_linear_layers
from ax.inference.kv_cache import Rooms
from ax.inference.prefix_cache import common_prefix_length
from ax.inference.row_attention import forward_rows
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
        dynamic = DynamicCache(states, config=model.config)
        rooms = Rooms()
        rooms.reserve(batch, width + 1)
        for slot in range(batch):
            rooms.write(slot, tuple((keys[slot: slot + 1], values[slot: slot + 1]) for keys, values in states))

        def dynamic_step():  # back to the prompt's states; the step concatenates the next column
            for layer, (keys, values) in zip(dynamic.layers, states):
                layer.keys, layer.values = keys, values
            model(step, past_key_values=dynamic)

        def rows_step(on=model, fed=None):  # the rooms hold the prompts; the step writes the next column
            fed = fed or [[token] for token in step[:, 0].tolist()]
            forward_rows(on, rooms, list(range(len(fed))), [width] * len(fed), fed, list(range(len(fed))))

        decode = {"dynamic": timed(dynamic_step, args.repeats), "rooms": timed(rows_step, args.repeats),
                  "rooms+packed": timed(lambda: rows_step(packed), args.repeats)}
        steps = ", ".join(f"{name} {ms * 1000:5.0f} ms ({ms * 1000 / batch:5.1f} per row)" for name, ms in decode.items())
        print(f"batch {batch}: prefill whole prompts {full * 1000:7.0f} ms, only the unshared "
              f"{width - shared} tokens {own * 1000:6.0f} ms; one decode step: {steps}")
    # A row joining: its unshared tokens written after the shared prefix's columns of slot 7.
    joiner = rows[7][shared:width]
    seven = [[token] for token in ids[:7, -1].tolist()]
    together = lambda: forward_rows(packed, rooms, list(range(8)), [width] * 7 + [shared],  # noqa: E731
                                    seven + [joiner], list(range(8)))
    prefill = lambda: forward_rows(packed, rooms, [7], [shared], [joiner], [0])  # noqa: E731
    step = lambda: forward_rows(packed, rooms, list(range(7)), [width] * 7, seven, list(range(7)))  # noqa: E731
    # In turns, one of each a repeat: this shared machine's speed drifts more than they differ.
    joining, apart = (statistics.median(times) for times in zip(*(
        (timed(together, 1), timed(prefill, 1) + timed(step, 1)) for _ in range(args.repeats))))
    print(f"packed, a row joining with its {len(joiner)} unshared tokens: in the step of the other 7 "
          f"{joining * 1000:5.0f} ms; its prefill alone and then their step {apart * 1000:5.0f} ms")


if __name__ == "__main__":
    main()
