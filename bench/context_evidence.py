"""Does a playbook help? Dev accuracy of domain programs without context, with a fixed
hand-written playbook, and with the playbook ACE learns offline on a slice of the train split.

    python bench/context_evidence.py --out results/context_evidence.json \\
        [--model smollm2] [--domains healthcare,marketing,research] [--train 16] [--limit N]

Per domain: the hand-written playbook is read from bench/handwritten_playbooks/<domain>.txt
(lessons a person wrote from the domain's rules, not learned); adaptation starts from an
empty playbook and runs one epoch over the first --train train items, with the same model as
Reflector and Curator. The three conditions then answer the dev items through ax's evaluation
runner (parse failures count as wrong). Accuracy is the share of items scored fully correct,
with a 95% Wilson interval; adapted and hand-written are also compared to no context on the
same items (paired bootstrap interval of the difference, exact McNemar p). The adaptation cost
is what the model client logged (calls, prompt and completion tokens) and wall time.

Next to --out (its name without the suffix) go the playbooks (hand-written and adapted) and
the response store with every answer; both are rebuilt from scratch on each run. The response
cache is off, so the cost and time are those of real model calls.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import dspy

import ax
from ax.configuration import Configuration
from ax.context import ContextAssembler, Playbook, PlaybookLearner, PlaybookStore, WithContext
from ax.context.tokens import token_counter
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import domain_items, evaluate_configurations
from ax.evals.stats import mcnemar_exact, paired_bootstrap_difference, wilson_interval
from ax.programs import get_domain

HANDWRITTEN_DIR = Path(__file__).parent / "handwritten_playbooks"
CONDITIONS = ("no-context", "hand-written", "adapted")


def handwritten_playbook(domain: str) -> Playbook:
    path = HANDWRITTEN_DIR / f"{domain}.txt"
    return Playbook.from_text(domain, path.read_text(encoding="utf-8"), source=f"hand-written: {path.name}")


def usage_delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before[key] for key in ("calls", "prompt_tokens", "completion_tokens")}


def adapt(domain, lm, tokenizer, store: PlaybookStore, train: list[dspy.Example]) -> dict:
    """One offline epoch from an empty playbook; the assembler is built as the evaluation
    runner builds it (`Configuration.build`), so the program learns with the context it is tested with."""
    program = WithContext(domain.program(), ContextAssembler(Playbook(domain=domain.name), tokenizer=tokenizer))
    learner = PlaybookLearner(program, domain.metric, store=store)
    before, started = lm.usage_summary(), time.perf_counter()
    with dspy.context(lm=lm):
        report = learner.offline(train, epochs=1, restart=True)
    store.save(learner.playbook)  # also when no task changed it, so the evaluation can read it
    return {"train_items": len(train), "epochs": 1, "wall_seconds": time.perf_counter() - started,
            **usage_delta(before, lm.usage_summary()),
            "train_score": report.mean_score_per_epoch[0] if report.mean_score_per_epoch else None,
            "per_role": {role: cost.model_dump() for role, cost in report.cost.items()}}


def playbook_size(playbook: Playbook | None, count_tokens) -> dict:
    if playbook is None:
        return {"bullets": 0, "tokens": 0}
    return {"bullets": len(playbook.bullets), "tokens": count_tokens(playbook.render()) if playbook.bullets else 0}


def run_domain(name: str, lm: ax.AxLM, work: Path, args) -> dict:
    domain = get_domain(name)
    tokenizer = lm.client.tokenizer
    count_tokens = token_counter(tokenizer)
    handwritten_store, adapted_store = PlaybookStore(work / "handwritten"), PlaybookStore(work / "adapted")
    handwritten = handwritten_playbook(name)
    handwritten_store.save(handwritten)
    adaptation = adapt(domain, lm, tokenizer, adapted_store, domain_items(domain, "train", args.train))
    adapted = adapted_store.load(name, create=False)

    playbooks = {"no-context": None, "hand-written": handwritten_store.path(name), "adapted": adapted_store.path(name)}
    configurations = [Configuration(name=condition, domain=name, lora=False, gepa=False, playbook=playbooks[condition],
                                    source=f"bench/context_evidence.py: {condition}") for condition in CONDITIONS]
    items = domain_items(domain, "dev", args.limit)
    store = ResponseStore(work, create=True)
    before, started = lm.usage_summary(), time.perf_counter()
    summary = evaluate_configurations(configurations, domain, lm=lm, store=store, items=items,
                                      num_threads=args.threads, command=args.command)
    evaluation = {"wall_seconds": time.perf_counter() - started, **usage_delta(before, lm.usage_summary()),
                  "parse_failures": summary.parse_failures}

    matrix = store.matrix(name)
    correct = dict(zip((c.name for c in matrix.respondents), matrix.correct))
    conditions = {}
    for condition, playbook in zip(CONDITIONS, (None, handwritten, adapted)):
        vector = correct[condition]
        interval = wilson_interval(int(vector.sum()), len(vector))
        result = {"accuracy": interval.estimate, "ci95": [interval.low, interval.high], "items": len(vector),
                  **playbook_size(playbook, count_tokens)}
        if condition != "no-context":
            difference = paired_bootstrap_difference(vector, correct["no-context"])
            result["vs_no_context"] = {"difference": difference.estimate, "ci95": [difference.low, difference.high],
                                       "mcnemar_p": mcnemar_exact(vector, correct["no-context"]).p_value}
        conditions[condition] = result
    return {"domain": name, "conditions": conditions, "adaptation": adaptation, "evaluation": evaluation,
            "adapted_playbook": adapted.render()}


def print_domain(result: dict) -> None:
    for condition, row in result["conditions"].items():
        low, high = row["ci95"]
        line = (f"{result['domain']:16s} {condition:12s} {row['items']:5d} {row['accuracy']:6.3f}  [{low:.3f}, {high:.3f}]"
                f" {row['bullets']:7d} {row['tokens']:6d}")
        if "vs_no_context" in row:
            versus = row["vs_no_context"]
            line += (f"  {versus['difference']:+.3f} [{versus['ci95'][0]:+.3f}, {versus['ci95'][1]:+.3f}]"
                     f"  p={versus['mcnemar_p']:.3f}")
        print(line)
    cost = result["adaptation"]
    train_score = "n/a" if cost["train_score"] is None else f"{cost['train_score']:.3f}"
    print(f"{'':16s} adaptation: {cost['train_items']} train items x {cost['epochs']} epoch, {cost['calls']} LM calls, "
          f"{cost['prompt_tokens']} prompt + {cost['completion_tokens']} completion tokens, "
          f"{cost['wall_seconds']:.0f} s wall, train score while adapting {train_score}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="JSON results file")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--domains", default="healthcare,customer_service,research")
    parser.add_argument("--train", type=int, default=16, help="first N train items adapted on (one epoch)")
    parser.add_argument("--limit", type=int, default=None, help="first N dev items (default: all)")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    args.command = shlex.join(["python", *sys.argv])
    work = args.out.with_suffix("")
    for stale in ("handwritten", "adapted", "responses"):
        shutil.rmtree(work / stale, ignore_errors=True)

    lm = ax.LM(args.model, cache=False)
    print(f"$ {args.command}")
    print(f"model={args.model} dev items={args.limit or 'all'} train items={args.train}; accuracy = share fully "
          "correct, 95% Wilson CI; difference vs no context: paired bootstrap 95% CI, exact McNemar p")
    print(f"{'domain':16s} {'condition':12s} {'items':>5s} {'acc':>6s}  {'95% CI':14s} {'bullets':>7s} {'tokens':>6s}"
          "  vs no context")
    results = []
    for name in args.domains.split(","):
        results.append(run_domain(name, lm, work, args))
        print_domain(results[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": args.command, "model": args.model, "dev_limit": args.limit,
                                    "train": args.train, "domains": results}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (playbooks and answers under {work}/)")


if __name__ == "__main__":
    main()
