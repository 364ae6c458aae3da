"""Adaptive testing replayed on real response matrices: full runs of the model on test splits of 400+ items.

    python bench/adaptive_real.py --run-dir runs/matrix_cpu/run --domain sentences2000
    python bench/adaptive_real.py --run-dir runs/matrix_h100_full --domain intents3080

Input: a run directory where `ax compare` answered every test item with every configuration of
several seeds (comparison runs and GEPA candidates). Leave one seed out
(`ax.evals.adaptive_eval.held_out_replays`, the check `ax compare --adaptive` runs on its own pool
before trusting it): for each seed, the items are calibrated on every complete respondent of the
other seeds, and each comparison run of that seed is tested adaptively from its stored answers,
stopping as `ax compare --adaptive` does (forecast SE at the target, or a quarter of the calibrated
items). The error is the forecast over every item (`ax.evals.adaptive.over_every_item`) minus the
accuracy the run's full answers give. Both methods of `ax compare --adaptive` are replayed: `irt`
(most informative items, IRT forecast) and `sampled` (random items, the pool's answers as predictor,
the difference estimator: `ax.evals.sampled`); it uses whichever misses less on its own pool.

Baseline, what a user without IRT would do: score the run on the same number of items drawn at
random (mean |error| over 200 draws per run). Printed beside: the majority floor and the spread of
the runs' full accuracies and distinct answer vectors, since a pool where every run answers alike
makes any estimator look good. Runs that were tested live (`ax compare --adaptive`) and then answered
every item (`ax evaluate --only ...`) are listed with their live forecast against their full accuracy.
`--answered-by-all`: for a run stopped before the end of its test split, only the items every
respondent answered (printed: how many of the split's), which makes every respondent complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ax.evals.adaptive import GOAL_ERROR, GOAL_FRACTION
from ax.evals.adaptive_eval import METHODS, held_out_replays
from ax.evals.comparison import Truth
from ax.evals.matrix_store import ResponseStore

DRAWS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--answered-by-all", action="store_true", help="only the items every respondent answered")
    args = parser.parse_args()
    matrix = ResponseStore(args.run_dir).matrix(args.domain, "test")
    split_items = len(matrix.item_ids)
    if args.answered_by_all:
        matrix = matrix.answered_by_all()
    n_items = len(matrix.item_ids)
    complete = matrix.complete()
    people = matrix.respondents
    seeds = sorted({c.seed for r, c in enumerate(people) if c.role == "comparison" and complete[r]})
    truth = Truth.of(matrix)
    full = np.nanmean(matrix.correct, axis=1)
    rng = np.random.default_rng(0)
    print(f"{args.domain}: {n_items} test items" + (f" (of {split_items}: those every respondent answered)"
                                                    if n_items < split_items else "")
          + f", {int(complete.sum())} complete respondents "
          f"({sum(c.role == 'calibration' for r, c in enumerate(people) if complete[r])} calibration-only), "
          f"seeds {seeds}, {len({tuple(row) for row in matrix.correct[complete]})} distinct answer vectors; "
          f"full accuracies {100 * full[complete].min():.1f} to {100 * full[complete].max():.1f}%"
          + (f"; majority floor {100 * truth.floors.majority:.1f}% (always {truth.floors.majority_answer!r})"
             if truth else ""))
    targets = [r for r, c in enumerate(people) if complete[r] and c.seed in seeds]
    summary = []
    for method in METHODS:
        print(f"\n{method}:\n")
        print("| run | seed | pool | items calibrated | full accuracy | forecast ± SE | items asked | error "
              "| random items, mean abs error |")
        print("|---|---|---|---|---|---|---|---|---|")
        errors, randoms, shares = [], [], []
        for replay in held_out_replays(matrix, targets, method):
            r, k = replay.row, replay.items_used
            if people[r].role != "comparison":
                continue
            draws = [abs(matrix.correct[r, rng.choice(n_items, k, replace=False)].mean() - full[r])
                     for _ in range(DRAWS)]
            errors.append(abs(replay.error))
            randoms.append(float(np.mean(draws)))
            shares.append(k / n_items)
            print(f"| {people[r].name} | {people[r].seed} | {replay.calibrated_on} ({replay.irt_model}) | "
                  f"{replay.calibrated_items} | {100 * full[r]:.1f}% | {100 * replay.forecast:.1f}% ± "
                  f"{100 * replay.standard_error:.1f} | {k} ({100 * k / n_items:.0f}%) | {100 * replay.error:+.1f} | "
                  f"{100 * randoms[-1]:.1f} |")
        if errors:
            mean_error = float(np.mean(errors))
            summary.append(
                f"{method}: mean |error| {100 * mean_error:.2f} points (max {100 * max(errors):.1f}) over "
                f"{len(errors)} runs, {100 * float(np.mean(shares)):.0f}% of the items asked on average; random "
                f"items of the same count: {100 * float(np.mean(randoms)):.2f} points. Goal (within "
                f"{100 * GOAL_ERROR:.0f} points using at most {100 * GOAL_FRACTION:.0f}% of the items): "
                + ("met." if mean_error <= GOAL_ERROR else "not met."))
    live = [(r, matrix.adaptive[c.name]) for r, c in enumerate(people) if complete[r] and c.name in matrix.adaptive]
    if live:
        print("\nLive adaptive tests (`ax compare --adaptive`), then every item answered (`ax evaluate`):\n")
        print("| run | method | full accuracy | live estimate ± SE | items asked | error |\n|---|---|---|---|---|---|")
        for r, estimate in live:
            print(f"| {people[r].name} | {estimate.method} | {100 * full[r]:.1f}% | {100 * estimate.accuracy:.1f}% ± "
                  f"{100 * estimate.accuracy_standard_error:.1f} | {len(estimate.items)} "
                  f"({100 * len(estimate.items) / n_items:.0f}%) | {100 * (estimate.accuracy - full[r]):+.1f} |")
        for method in METHODS:
            mine = [abs(e.accuracy - full[r]) for r, e in live if e.method == method]
            if mine:
                summary.append(f"Live, {method}: mean |error| {100 * float(np.mean(mine)):.2f} points over {len(mine)} "
                               "runs.")
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
