"""Throughput of DSPy calls through the ax client vs. a plain one-at-a-time `generate` loop.

Both sides use the same weights (each its own copy, loaded alike), the same prompts (DSPy's
ChatAdapter prompt for each question, rendered with the model's chat template) and the same
token budget; both decode greedily. The client runs the calls from DSPy threads (dspy.Parallel),
which it batches, and checks prompt-lookup drafts for rows that repeat their prompt (kept only
where they are the greedy tokens, ax/client/speculation.py). On a CPU a third arm runs the plain loop on the oneDNN-packed weights the
client uses, so the ratio splits into what the kernels give and what batching gives.
Printed: completion tokens per second of each and the ratios.

    python bench/client_throughput.py                      # embedded SmolLM2 on this machine
    python bench/client_throughput.py --no-prefix-cache    # prefill every prompt whole
    python bench/client_throughput.py --no-pack            # the client on plain fp32 weights
    python bench/client_throughput.py --draft-tokens 0     # no prompt-lookup drafts
    python bench/client_throughput.py --random-init 0.5b --tokenizer DIR --device cuda
"""

from __future__ import annotations

import argparse
import time

import dspy
import torch

from ax.client import Client
from ax.client.cpu_kernels import cpu_packing_available, pack_linear_layers
from ax.client.local import LocalBackend
from ax.client.prompting import render_chat
from ax.model import LoadedModel, load_model

RANDOM_CONFIGS = {  # Llama shapes for throughput runs where no weights can be downloaded
    "0.5b": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=4),
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4),
}

TOPICS = ["a lease's early termination clause", "quarterly revenue growth", "chest pain triage",
          "a refund request", "a listing's square footage", "a factory's defect rate", "a course prerequisite",
          "a churn dashboard"]


def questions(n: int) -> list[str]:
    return [f"In one sentence, what should an analyst check first about {TOPICS[i % len(TOPICS)]} (case {i})?"
            for i in range(n)]


def random_model(name: str, tokenizer_dir: str, device: str) -> LoadedModel:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)  # every copy gets the same weights
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, **RANDOM_CONFIGS[name])
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, f"random-{name}", tokenizer_dir, f"random-{name}", device, dtype)


@torch.inference_mode()
def plain_loop(loaded: LoadedModel, prompts: list[str], max_new_tokens: int) -> tuple[int, float]:
    tokenizer, model = loaded.tokenizer, loaded.model
    tokens = 0
    started = time.perf_counter()
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        tokens += output.shape[1] - encoded["input_ids"].shape[1]
    return tokens, time.perf_counter() - started


def client_run(loaded: LoadedModel, qs: list[str], threads: int, max_new_tokens: int,
               prefix_cache: bool, pack: bool, draft_tokens: int | None) -> tuple[int, float, LocalBackend]:
    backend = LocalBackend(loaded, max_batch_size=threads, prefix_cache=prefix_cache, pack_weights=pack,
                           draft_tokens=draft_tokens)
    client = Client(backend, model_name=loaded.name, cache=False, max_field_tokens=max_new_tokens)
    lm = client.lm()
    predict = dspy.Predict("question -> answer")
    started = time.perf_counter()
    with dspy.context(lm=lm):
        dspy.Parallel(num_threads=threads, disable_progress_bar=True)(
            [(predict, dspy.Example(question=q).with_inputs("question")) for q in qs])
    elapsed = time.perf_counter() - started
    backend.close()
    return client.usage.totals().completion_tokens, elapsed, backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--random-init", choices=sorted(RANDOM_CONFIGS), help="random-init Llama of this size")
    parser.add_argument("--tokenizer", help="tokenizer directory for --random-init")
    parser.add_argument("--device", default=None)
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--no-prefix-cache", action="store_true", help="prefill every prompt whole")
    parser.add_argument("--no-pack", action="store_true", help="the client on plain fp32 weights")
    parser.add_argument("--draft-tokens", type=int, default=None,
                        help="prompt-lookup draft tokens a row and step (0: none; default: the client's, 6)")
    args = parser.parse_args()

    def load() -> LoadedModel:
        if args.random_init:
            return random_model(args.random_init, args.tokenizer, args.device or "cuda")
        return load_model(args.model, device=args.device)

    loaded, plain = load(), load()  # the client packs its model's weights; the plain loop keeps its own
    has_packed_arm = plain.device == "cpu" and cpu_packing_available()
    packed_plain = load() if has_packed_arm else None
    if has_packed_arm:
        pack_linear_layers(packed_plain.model)
    qs = questions(args.calls)
    adapter = dspy.ChatAdapter()
    signature = dspy.Predict("question -> answer").signature
    prompts = [render_chat(loaded.tokenizer, adapter.format(signature, [], {"question": q})) for q in qs]

    prefix_cache, pack = not args.no_prefix_cache, not args.no_pack
    # warm-up: allocator, kernels, tables
    client_run(loaded, qs[: args.threads], args.threads, 4, prefix_cache, pack, args.draft_tokens)
    plain_loop(plain, prompts[:1], 4)
    if has_packed_arm:
        plain_loop(packed_plain, prompts[:1], 4)
    # Each arm runs once on each half of the calls, the second half in reverse order: on this shared
    # 2-core machine a run right after minutes of load was up to 1.5x slower than the same run
    # alone, which a fixed order charges to whichever arm runs last. ABBA cancels a steady drift.
    half = len(qs) // 2
    arms = {"plain": lambda part: plain_loop(plain, [prompts[i] for i in part], args.max_new_tokens),
            "ax": lambda part: client_run(loaded, [qs[i] for i in part], args.threads, args.max_new_tokens,
                                          prefix_cache, pack, args.draft_tokens)}
    if has_packed_arm:
        arms["packed"] = lambda part: plain_loop(packed_plain, [prompts[i] for i in part], args.max_new_tokens)
    halves = (range(half), range(half, len(qs)))
    runs: dict[str, list] = {name: [] for name in arms}
    for part, order in zip(halves, (list(arms), list(reversed(arms)))):
        for name in order:
            runs[name].append(arms[name](part))
    totals = {name: (sum(r[0] for r in result), sum(r[1] for r in result)) for name, result in runs.items()}
    rates = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    batches = [size for r in runs["ax"] for size in r[2].batch_sizes]
    drafted, kept = (sum(getattr(r[2], name) for r in runs["ax"]) for name in ("drafted_tokens", "accepted_tokens"))
    print(f"model={loaded.name} device={loaded.device} dtype={loaded.dtype} calls={args.calls} "
          f"threads={args.threads} max_new_tokens={args.max_new_tokens} torch_threads={torch.get_num_threads()} "
          f"prefix_cache={'on' if prefix_cache else 'off'} packed_weights={'on' if pack and has_packed_arm else 'off'} "
          f"draft_tokens={runs['ax'][0][2].draft_tokens}")
    labels = {"plain": "plain generate loop", "packed": "plain loop, packed weights",
              "ax": f"ax client ({args.threads} threads)"}
    for name, (tokens, seconds) in totals.items():
        batch = f"  (mean batch {sum(batches) / len(batches):.1f})" if name == "ax" else ""
        print(f"{labels[name]:27s}: {tokens:6d} tokens in {seconds:7.2f} s = {rates[name]:8.1f} tokens/s{batch}")
    print(f"ratio (ax / plain tokens/s): {rates['ax'] / rates['plain']:.2f}x")
    if drafted:
        print(f"  prompt-lookup drafts: {kept} of {drafted} draft tokens kept ({kept / drafted:.0%}); "
              f"{kept} of the client's {totals['ax'][0]} tokens came from kept drafts")
    if has_packed_arm:
        print(f"  of which packed weights (packed / plain loop): {rates['packed'] / rates['plain']:.2f}x, "
              f"batching, drafts and the rest (ax / packed loop): {rates['ax'] / rates['packed']:.2f}x")


if __name__ == "__main__":
    main()
