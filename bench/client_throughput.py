"""Throughput of DSPy programs' calls through the ax client vs. what a user would run instead: transformers' `generate`.

Workload: the programs of built-in domains (a classification, a two-field classification, an
extraction and a figures-for-computation extraction) answering their test items, each call the
predictor's own prompt as DSPy's ChatAdapter writes it (empty playbook), rendered with the model's
chat template. The same prompts, greedy decoding, on copies of the same weights:

  ax client                     the predictors called from `--threads` DSPy threads; the client batches
                                them, decodes field by field under each field's constraint, checks
                                prompt-lookup drafts
  generate, static batches      transformers' `generate` on batches of `--threads` prompts (left padding),
                                up to `--max-new-tokens`, then parsed by the ChatAdapter
  generate + prompt lookup      one prompt at a time with `prompt_lookup_num_tokens=10` (transformers runs
                                assisted decoding at batch size 1 only)

Printed per arm: calls per second, completion tokens per second, calls whose output DSPy could not
parse; then ax's calls/s over the faster `generate` arm's. Arms run ABBA over two halves of the
calls (a shared machine drifts). Goal: >= 2x on 2 cores.

    python bench/client_throughput.py                      # embedded SmolLM2 on this machine
    python bench/client_throughput.py --items 8            # items per domain (default 12)
    python bench/client_throughput.py --random-init 0.5b --tokenizer DIR --device cuda
"""

from __future__ import annotations

import argparse
import time

import dspy
import torch

from ax.client import Client
from ax.client.prompting import render_chat
from ax.inference.local import LocalBackend
from ax.model import LoadedModel, load_model
from ax.programs import get_domain

DOMAINS = ("customer_service", "legal", "real_estate", "financial")
RANDOM_CONFIGS = {  # Llama shapes for throughput runs where no weights can be downloaded
    "0.5b": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=4),
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4),
}


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


def workload(items: int) -> list[tuple[dspy.Predict, dict]]:
    """(predictor, its inputs) for `items` test items of each domain."""
    calls = []
    for name in DOMAINS:
        domain = get_domain(name)
        predictor = domain.program().predictors()[0]
        calls += [(predictor, {"context": "", **example.inputs()}) for example in domain.splits().test[:items]]
    return calls


def parsed(predictor: dspy.Predict, text: str) -> bool:
    try:
        dspy.ChatAdapter().parse(predictor.signature, text)
    except Exception:  # AdapterParseError, or a value of the wrong type
        return False
    return True


@torch.inference_mode()
def static_batches(loaded: LoadedModel, calls, prompts: list[str], batch: int, max_new_tokens: int):
    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.padding_side = "left"
    tokens, failures = 0, 0
    started = time.perf_counter()
    for start in range(0, len(prompts), batch):
        encoded = tokenizer(prompts[start:start + batch], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        new = output[:, encoded["input_ids"].shape[1]:]
        for (predictor, _), row in zip(calls[start:start + batch], new):
            real = row[row != tokenizer.pad_token_id]
            tokens += int(real.numel())
            failures += not parsed(predictor, tokenizer.decode(real, skip_special_tokens=True))
    return tokens, time.perf_counter() - started, failures


@torch.inference_mode()
def prompt_lookup(loaded: LoadedModel, calls, prompts: list[str], batch: int, max_new_tokens: int):
    tokenizer, model = loaded.tokenizer, loaded.model
    tokens, failures = 0, 0
    started = time.perf_counter()
    for (predictor, _), prompt in zip(calls, prompts):
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, prompt_lookup_num_tokens=10,
                                pad_token_id=tokenizer.pad_token_id)
        new = output[0, encoded["input_ids"].shape[1]:]
        tokens += int(new.numel())
        failures += not parsed(predictor, tokenizer.decode(new, skip_special_tokens=True))
    return tokens, time.perf_counter() - started, failures


def ax_client(loaded: LoadedModel, calls, prompts: list[str], batch: int, max_new_tokens: int):
    backend = LocalBackend(loaded, max_batch_size=batch)
    client = Client(backend, model_name=loaded.name, cache=False, max_field_tokens=max_new_tokens)
    lm = client.lm()

    def call(predictor: dspy.Predict, inputs: dict) -> bool:
        try:
            predictor(**inputs)
        except Exception:
            return False
        return True

    started = time.perf_counter()
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        results = dspy.Parallel(num_threads=batch, disable_progress_bar=True)(
            [(call, {"predictor": predictor, "inputs": inputs}) for predictor, inputs in calls])
    elapsed = time.perf_counter() - started
    backend.close()
    return client.usage.totals().completion_tokens, elapsed, sum(not ok for ok in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--random-init", choices=sorted(RANDOM_CONFIGS), help="random-init Llama of this size")
    parser.add_argument("--tokenizer", help="tokenizer directory for --random-init")
    parser.add_argument("--device", default=None)
    parser.add_argument("--items", type=int, default=12, help="test items per domain")
    parser.add_argument("--threads", type=int, default=8, help="ax's DSPy threads = generate's batch size")
    parser.add_argument("--max-new-tokens", type=int, default=64,
                        help="generate's budget for the whole answer; ax's budget per field")
    args = parser.parse_args()

    def load() -> LoadedModel:
        if args.random_init:
            return random_model(args.random_init, args.tokenizer, args.device or "cuda")
        return load_model(args.model, device=args.device)

    calls = workload(args.items)
    copies = {"ax": load(), "static": load(), "lookup": load()}  # the client packs its copy's CPU weights
    adapter = dspy.ChatAdapter()
    prompts = [render_chat(copies["static"].tokenizer, adapter.format(p.signature, p.demos, inputs))
               for p, inputs in calls]
    arms = {"ax": ax_client, "static": static_batches, "lookup": prompt_lookup}
    for name, arm in arms.items():  # warm-up: allocator, kernels, tables
        arm(copies[name], calls[:2], prompts[:2], args.threads, 4)
    half = len(calls) // 2
    runs: dict[str, list] = {name: [] for name in arms}
    for part, order in ((slice(0, half), list(arms)), (slice(half, None), list(reversed(arms)))):
        for name in order:
            runs[name].append(arms[name](copies[name], calls[part], prompts[part], args.threads, args.max_new_tokens))
    labels = {"ax": f"ax client ({args.threads} threads)", "static": f"generate, static batches of {args.threads}",
              "lookup": "generate + prompt lookup, batch 1"}
    loaded = copies["ax"]
    print(f"model={loaded.name} device={loaded.device} dtype={loaded.dtype} calls={len(calls)} "
          f"({args.items} test items of {', '.join(DOMAINS)}) threads={args.threads} "
          f"max_new_tokens={args.max_new_tokens} torch_threads={torch.get_num_threads()}")
    rates = {}
    for name, results in runs.items():
        tokens, seconds, failures = (sum(r[i] for r in results) for i in range(3))
        rates[name] = len(calls) / seconds
        print(f"{labels[name]:36s}: {len(calls)} calls in {seconds:7.2f} s = {rates[name]:6.2f} calls/s, "
              f"{tokens / seconds:7.1f} completion tokens/s, {failures} unparsed")
    best = max(("static", "lookup"), key=rates.__getitem__)
    print(f"ratio (ax / {labels[best]}, calls/s): {rates['ax'] / rates[best]:.2f}x")


if __name__ == "__main__":
    main()
