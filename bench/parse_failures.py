"""How often a small model leaves DSPy with an unparseable answer: DSPy's adapters alone vs. ax's decoding.

The same calls (three signatures, 18 inputs each) run three ways on one model:
  chat    DSPy's default ChatAdapter (with its JSONAdapter fallback), completion generated unguided
  json    DSPy's JSONAdapter, completion generated unguided
  ax      DSPy's default ChatAdapter, completion decoded field by field by the ax client
A call fails when DSPy raises (AdapterParseError) instead of returning every output field.

    python bench/parse_failures.py [--model smollm2] [--threads 4]
"""

from __future__ import annotations

import argparse
import time
from typing import Literal

from concurrent.futures import ThreadPoolExecutor

import dspy
from dspy.utils.exceptions import AdapterParseError

from ax.client import Client
from ax.inference.local import LocalBackend
from ax.model import load_model


class Sentiment(dspy.Signature):
    """Classify the sentiment of a sentence from an earnings call and rate your confidence from 0 to 1."""

    sentence: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


class Clause(dspy.Signature):
    """Read the contract clause: how many days of notice does it require, and does it bind the tenant?"""

    clause: str = dspy.InputField()
    notice_days: int = dspy.OutputField()
    binds_tenant: bool = dspy.OutputField()


class Answer(dspy.Signature):
    """Answer the customer's question in one short sentence."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def cases() -> list[tuple[type[dspy.Signature], dict[str, str]]]:
    companies = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne"]
    moods = ["Revenue rose {p}% and margins expanded", "Sales fell {p}% amid weak demand",
             "Results were in line with guidance at {p}% growth"]
    parties = ["The tenant shall give {d} days written notice before vacating.",
               "The landlord must provide {d} days notice of any rent increase.",
               "Either party may terminate with {d} days notice."]
    asks = ["Where is my order {n}?", "How do I reset my password for account {n}?", "Can I return item {n}?"]
    out = []
    for i in range(18):
        out.append((Sentiment, {"sentence": f"{companies[i % 6]}: {moods[i % 3].format(p=3 + i)}."}))
        out.append((Clause, {"clause": parties[i % 3].format(d=10 * (1 + i % 9))}))
        out.append((Answer, {"question": asks[i % 3].format(n=1000 + i)}))
    return out


def run_mode(backend: LocalBackend, name: str, structured: bool, adapter: dspy.Adapter, threads: int) -> dict:
    client = Client(backend, model_name=name, cache=False, structured=structured, max_field_tokens=48)
    lm = client.lm(max_tokens=96)

    def call(case):
        signature, inputs = case
        try:
            with dspy.context(lm=lm, adapter=adapter):  # dspy settings are per thread
                dspy.Predict(signature)(**inputs)
            return 0
        except AdapterParseError:
            return 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        failures = sum(pool.map(call, cases()))
    return {"calls": len(cases()), "failures": failures, "lm_calls": client.usage.totals().calls,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    loaded = load_model(args.model)
    backend = LocalBackend(loaded, max_batch_size=args.threads)
    modes = [("chat (DSPy default, unguided)", False, dspy.ChatAdapter()),
             ("json (DSPy JSONAdapter, unguided)", False, dspy.JSONAdapter()),
             ("ax (ChatAdapter + ax field decoding)", True, dspy.ChatAdapter())]
    print(f"model={loaded.name} signatures=3 calls_per_mode={len(cases())}")
    for label, structured, adapter in modes:
        result = run_mode(backend, loaded.name, structured, adapter, args.threads)
        print(f"{label:40s} failures {result['failures']:3d}/{result['calls']} "
              f"({100 * result['failures'] / result['calls']:.0f}%)  lm calls {result['lm_calls']:4d}  "
              f"{result['seconds']:.0f} s")
    backend.close()


if __name__ == "__main__":
    main()
