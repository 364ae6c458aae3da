"""How well the domain router picks the adapter for mixed-domain queries it never saw.

    .venv/bin/python bench/router_accuracy.py [--threshold 0.3] [--domains financial,legal,...] [--out-of-domain]

The router (bench/router.py: TF-IDF words and word pairs into a softmax regression) is fit
on each domain's train split and asked to route every item of every domain's test split, all
domains mixed. A query is an item's input fields joined, as a user would send them. No LM is
loaded: the router is a lexical classifier, so this runs in seconds on any machine.

Reported per domain and overall, with 95% Wilson intervals:
  top-1       the most probable domain is the right one (threshold ignored)
  routed      at the threshold: the right adapter serves (a fallback to the base model counts as wrong)
  fallback    share of queries left to the base model (confidence below the threshold)
  precision   right among the queries the router did send to an adapter (accuracy at its threshold)
and a sweep of thresholds showing what each trades: fallback against precision.

With --out-of-domain, also each domain held out in turn: the router is fit on the other domains
and routes the held-out domain's test queries, which no adapter serves, so every one of them
should fall back. The sweep then shows, per threshold, the out-of-domain queries that fall back
beside the in-domain ones that fall back needlessly: the trade the default threshold makes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from ax.evals.stats import wilson_interval
from ax.programs import get_domain
from ax.programs.domain import BUILTIN_DOMAINS
from router import DEFAULT_THRESHOLD, DomainRouter, Route

SWEEP = (0.0, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 0.95)


def query_text(domain, example) -> str:
    """What a user would send: the item's input fields, in the domain's order."""
    return "\n".join(str(example[name]) for name in domain.inputs())


def share(hits: int, n: int) -> str:
    """'0.912 [0.89, 0.93]'; '-' when there is nothing to divide."""
    if n == 0:
        return f"{'-':>19}"
    interval = wilson_interval(hits, n)
    return f"{interval.estimate:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def row(name: str, results: list[tuple[str, Route]], threshold: float) -> str:
    top1 = sum(max(route.probabilities, key=route.probabilities.get) == expected for expected, route in results)
    fallback = sum(route.confidence < threshold for _, route in results)
    routed = [(expected, route) for expected, route in results if route.confidence >= threshold]
    right = sum(route.domain == expected for expected, route in routed)
    return (f"{name:<18} {len(results):>5}  {share(top1, len(results))}  {share(right, len(results))}  "
            f"{share(fallback, len(results))}  {share(right, len(routed))}")


def fit(domains, threshold: float = DEFAULT_THRESHOLD) -> DomainRouter:
    return DomainRouter.fit({d.name: [query_text(d, e) for e in d.splits().train] for d in domains},
                            threshold=threshold)


def held_out_confidences(domains) -> list[float]:
    """The router's confidence on each test query of a domain it was not fit on, every domain in turn."""
    confidences = []
    for held_out in domains:
        router = fit([d for d in domains if d is not held_out])
        confidences += [router.route(query_text(held_out, e)).confidence for e in held_out.splits().test]
    return confidences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="confidence below which the base model answers (default: the router's)")
    parser.add_argument("--domains", default=",".join(BUILTIN_DOMAINS), help="comma-separated (default: the twelve one-call built-ins)")
    parser.add_argument("--out-of-domain", action="store_true",
                        help="also hold each domain out and count how many of its queries fall back")
    args = parser.parse_args()
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold {args.threshold}: must lie in [0, 1]")
    domains = [get_domain(name) for name in args.domains.split(",")]

    started = time.perf_counter()
    router = fit(domains, args.threshold)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = {d.name: [(d.name, router.route(query_text(d, e))) for e in d.splits().test] for d in domains}
    route_seconds = time.perf_counter() - started
    everything = [r for rs in results.values() for r in rs]

    print(f"$ {shlex.join(['python', *sys.argv])}")
    print(f"router: tfidf + softmax regression, {len(router.state.vocabulary):,} terms, {len(domains)} domains, "
          f"fit on {sum(len(d.splits().train) for d in domains)} train items in {fit_seconds:.1f} s; "
          f"{len(everything)} test queries routed in {route_seconds:.1f} s; no LM loaded")
    print(f"threshold {args.threshold:g}; 95% Wilson intervals\n")
    print(f"{'domain':<18} {'items':>5}  {'top-1':<19}  {'routed (right)':<19}  {'fallback':<19}  {'precision':<19}")
    for name, domain_results in results.items():
        print(row(name, domain_results, args.threshold))
    print(row("all", everything, args.threshold))

    outside = held_out_confidences(domains) if args.out_of_domain else []
    print(f"\n{'threshold':>9}  {'fallback':<19}  {'precision':<19}  {'routed (right)':<19}"
          + (f"  {'out-of-domain fallback':<22}" if outside else ""))
    for threshold in sorted({*SWEEP, args.threshold}):
        routed = [(expected, route) for expected, route in everything if route.confidence >= threshold]
        right = sum(max(route.probabilities, key=route.probabilities.get) == expected for expected, route in routed)
        line = (f"{threshold:>9.2f}  {share(len(everything) - len(routed), len(everything))}  "
                f"{share(right, len(routed))}  {share(right, len(everything))}")
        if outside:
            line += f"  {share(sum(c < threshold for c in outside), len(outside))}"
        print(line)


if __name__ == "__main__":
    main()
