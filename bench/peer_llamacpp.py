"""The same DSPy programs and items through ax and through a llama.cpp server on the same GGUF.

What a DSPy user on a CPU would run instead of ax: the embedded SmolLM2-135M GGUF served by
llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`, the optional extra
`pip install -e '.[peer]'`, which builds llama.cpp from source: about 12 minutes on 2 cores), called through DSPy. Arms:

  ax                         ax.LM() in-process, field-by-field decoding; the GGUF converted to bf16
                             on a CPU with native bf16 (the default there), else to fp32
  ax fp32                    the same with ax.LM(dtype="float32"): the GGUF's weights exactly
  ax bf16                    the same with ax.LM(dtype="bfloat16"), not in the default arms: with
                             AX_DTYPE=float32 the arms `ax,ax-bf16` are those measured before bf16
                             became the CPU default
  ax JSON, ax fp32 JSON      ax through DSPy's JSONAdapter (ax bf16 JSON too): the prompts llama.cpp + JSON schema gets
                             (that arm adds only the schema to the request), so that accuracy is
                             compared on equal prompts; ax decodes the JSON's values field by field
                             in place of a grammar
  llama.cpp + JSON schema    DSPy's JSONAdapter with the signature's JSON schema sent as the
                             server's constrained output (a grammar), so every answer is the
                             schema's JSON
  llama.cpp + ChatAdapter    DSPy's default adapter, free text parsed by its field markers

Each arm runs the built-in domains' whole programs (the client bench's domains: a classification,
a two-field classification, an extraction, an extraction followed by arithmetic) on the same test
items from `--threads` DSPy threads, greedy, no cache. The server gets `--server-threads` cores and
answers one request at a time, as llama-cpp-python's server does. Printed per arm: items/s,
answers DSPy could not parse, accuracy with its 95% Wilson interval beside the majority floor; then ax over the best
llama.cpp arm. Goal: ax >= 1.5x in items/s at equal accuracy (within 1 point), 0 parse failures.

    python bench/peer_llamacpp.py                  # 12 test items per domain, every arm
    python bench/peer_llamacpp.py --items 24 --arms ax,ax-fp32,llama-json   # without the slow ChatAdapter arm
    python bench/peer_llamacpp.py --items 24 --arms ax-json,llama-json      # accuracy on equal prompts
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import dspy
from dspy.adapters.json_adapter import _get_structured_outputs_response_format
from statsmodels.stats.proportion import proportion_confint

import ax
from ax.model import embedded_gguf_path
from ax.programs import get_domain
from ax.programs.floors import examples_majority_floor
from ax.programs.metrics import passing

sys.path.insert(0, os.path.dirname(__file__))
from client_throughput import DOMAINS  # noqa: E402  (the same workload's domains)


# In this order: ChatAdapter's long answers run last, so no queue of them is left on the server for another arm.
ARMS = {"ax": "ax", "ax-fp32": "ax fp32", "ax-bf16": "ax bf16", "ax-json": "ax JSON", "ax-fp32-json": "ax fp32 JSON",
        "ax-bf16-json": "ax bf16 JSON", "llama-json": "llama.cpp + JSON schema", "llama-chat": "llama.cpp + ChatAdapter"}
DEFAULT_ARMS = [name for name in ARMS if "bf16" not in name]


class SchemaJSONAdapter(dspy.JSONAdapter):
    """DSPy's JSONAdapter sending the signature's JSON schema, in llama-cpp-python's `json_object` + `schema` form.

    DSPy sends a schema only to models its capability table knows; a local server is not in it.
    """

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        schema = _get_structured_outputs_response_format(signature, self.use_native_function_calling)
        lm_kwargs["response_format"] = {"type": "json_object", "schema": schema.model_json_schema()}


def start_server(threads: int, context: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf_path()), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--n_ctx", str(context), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{base}/models", timeout=1)
            return server, base
        except OSError:
            if server.poll() is not None:
                raise SystemExit("llama_cpp.server exited; is llama-cpp-python installed (pip install -e '.[peer]')?")
            time.sleep(0.5)
    server.kill()
    raise SystemExit("llama_cpp.server did not answer within 5 minutes")


def run_arm(lm: dspy.BaseLM, adapter: dspy.Adapter, work: list[tuple], threads: int) -> tuple[float, list[tuple[bool, bool]]]:
    """Seconds, and (parsed, correct) of each (program, example, metric) in `work`, in its order."""

    def one(program: dspy.Module, example: dspy.Example, metric: Callable) -> tuple[bool, bool]:
        try:
            prediction = program(**example.inputs())
        except Exception:  # AdapterParseError, or a value of the wrong type
            return False, False
        return True, passing(metric)(example, prediction)

    started = time.perf_counter()
    with dspy.context(lm=lm, adapter=adapter):
        results = dspy.Parallel(num_threads=threads, disable_progress_bar=True)(
            [(one, {"program": program, "example": example, "metric": metric}) for program, example, metric in work])
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=12, help="test items per domain")
    parser.add_argument("--threads", type=int, default=8, help="DSPy threads of every arm")
    parser.add_argument("--server-threads", type=int, default=os.cpu_count() or 1, help="llama.cpp's CPU threads")
    parser.add_argument("--max-tokens", type=int, default=256, help="the server's completion budget a call")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    args = parser.parse_args()

    work, owners, floor = [], [], 0.0
    for name in DOMAINS:
        domain = get_domain(name)
        examples = domain.splits().test[:args.items]
        work += [(domain.program(), example, domain.metric) for example in examples]
        owners += [name] * len(examples)
        floor += examples_majority_floor(domain, examples) * len(examples)
    chosen = args.arms.split(",")
    if unknown := set(chosen) - set(ARMS):
        raise SystemExit(f"--arms: unknown {sorted(unknown)}; choose from {', '.join(ARMS)}")
    server, base = start_server(args.server_threads, 4096)
    try:
        served = dspy.LM("openai/smollm2", api_base=base, api_key="none", temperature=0.0,
                         max_tokens=args.max_tokens, cache=False)
        builders = {
            "ax": lambda: (ax.LM(cache=False), dspy.ChatAdapter()),
            "ax-fp32": lambda: (ax.LM(cache=False, dtype="float32"), dspy.ChatAdapter()),
            "ax-bf16": lambda: (ax.LM(cache=False, dtype="bfloat16"), dspy.ChatAdapter()),
            "ax-json": lambda: (ax.LM(cache=False), dspy.JSONAdapter()),
            "ax-fp32-json": lambda: (ax.LM(cache=False, dtype="float32"), dspy.JSONAdapter()),
            "ax-bf16-json": lambda: (ax.LM(cache=False, dtype="bfloat16"), dspy.JSONAdapter()),
            "llama-chat": lambda: (served, dspy.ChatAdapter()),
            "llama-json": lambda: (served, SchemaJSONAdapter()),
        }
        arms = {ARMS[name]: builders[name]() for name in chosen}
        for lm, adapter in arms.values():  # warm-up: weights paged in, kernels, the server's first request
            run_arm(lm, adapter, work[:1], 1)
        results = {name: run_arm(lm, adapter, work, args.threads) for name, (lm, adapter) in arms.items()}
    finally:
        server.terminate()
        server.wait()
    print(f"{len(work)} items ({args.items} test items of {', '.join(DOMAINS)}), {args.threads} DSPy threads, "
          f"llama.cpp server threads {args.server_threads}, GGUF {embedded_gguf_path().name}; majority floor "
          f"{100 * floor / len(work):.1f}% (each domain's most common gold answer, weighted by its items)")
    accuracy, rate = {}, {}
    for name, (seconds, answers) in results.items():
        correct = sum(right for _, right in answers)
        per_domain = ", ".join(f"{domain} {sum(right for owner, (_, right) in zip(owners, answers) if owner == domain)}"
                               for domain in DOMAINS)
        low, high = proportion_confint(correct, len(work), method="wilson")
        print(f"{name:26s}: {len(work) / seconds:6.3f} items/s ({seconds:7.1f} s), "
              f"{sum(not ok for ok, _ in answers):3d} unparsed, accuracy {100 * correct / len(work):5.1f}% "
              f"[{100 * low:.1f}, {100 * high:.1f}]; right per domain: {per_domain}")
        rate[name], accuracy[name] = len(work) / seconds, correct / len(work)
    peers = [name for name in results if name.startswith("llama.cpp")]
    if not peers:
        return
    best = max(peers, key=rate.__getitem__)
    for name in (name for name in results if name.startswith("ax")):
        print(f"ratio ({name} / {best}, items/s): {rate[name] / rate[best]:.2f}x; accuracy {name} minus it: "
              f"{100 * (accuracy[name] - accuracy[best]):+.1f} points")


if __name__ == "__main__":
    main()
