"""How well the domain router picks the adapter for mixed-domain queries it never saw.

    .venv/bin/python bench/router_accuracy.py [--threshold 0.5] [--domains financial,legal,...]

The router (ax.adapters.router: TF-IDF words and word pairs into a softmax regression) is fit
on each domain's train split and asked to route every item of every domain's test split, all
domains mixed. A query is an item's input fields joined, as a user would send them. No LM is
loaded: the router is a lexical classifier, so this runs in seconds on any machine.

Reported per domain and overall, with 95% Wilson intervals:
  top-1       the most probable domain is the right one (threshold ignored)
  routed      at the threshold: the right adapter serves (a fallback to the base model counts as wrong)
  fallback    share of queries left to the base model (confidence below the threshold)
  precision   right among the queries the router did send to an adapter (accuracy at its threshold)
and a sweep of thresholds showing what each trades: fallback against precision.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from ax.adapters.router import DomainRouter, Route
from ax.evals.stats import wilson_interval
from ax.programs import get_domain, list_domains

SWEEP = (0.0, 0.3, 0.5, 0.7, 0.9, 0.95)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.5, help="confidence below which the base model answers")
    parser.add_argument("--domains", default=",".join(list_domains()), help="comma-separated (default: all)")
    args = parser.parse_args()
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold {args.threshold}: must lie in [0, 1]")
    domains = [get_domain(name) for name in args.domains.split(",")]

    started = time.perf_counter()
    router = DomainRouter.fit({d.name: [query_text(d, e) for e in d.splits().train] for d in domains},
                              threshold=args.threshold)
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

    print(f"\n{'threshold':>9}  {'fallback':<19}  {'precision':<19}  {'routed (right)':<19}")
    for threshold in sorted({*SWEEP, args.threshold}):
        routed = [(expected, route) for expected, route in everything if route.confidence >= threshold]
        right = sum(max(route.probabilities, key=route.probabilities.get) == expected for expected, route in routed)
        print(f"{threshold:>9.2f}  {share(len(everything) - len(routed), len(everything))}  "
              f"{share(right, len(routed))}  {share(right, len(everything))}")


if __name__ == "__main__":
    main()
