"""Adaptive evaluation against the full evaluation, at the pool and calibration sizes ax meets.

Run: flock /tmp/ax-cpu.lock .venv/bin/python bench/adaptive_eval.py   (prints a Markdown table)

Simulated truth as in bench/irt_recovery.py: 2PL items, difficulty ~ N(0, 1), discrimination
~ lognormal(0, 0.3); abilities ~ N(0, 1). For each pool size and calibration size, POOLS
independent pools are calibrated (1PL or 2PL, as ``ax.evals.calibration.choose_model`` picks
for that many respondents) and FRESH new respondents per pool are tested adaptively with the
defaults of ``ax evaluate --adaptive`` (stop at the accuracy-SE target or at the budget).

Columns, all in accuracy points against the respondent's observed accuracy on the whole pool:
|err| of the adaptive forecast (mean, 90th percentile); its own forecast SE (mean), to set
against the RMSE; "random": the plain accuracy on as many randomly chosen items; "true items":
the same adaptive test with the true item parameters, so the gap to it is calibration error;
"true ability too": the items asked counted as answered and the rest at their true expected
score, the floor left by the unasked items' own chance; "full vs truth": the full evaluation's
own distance from the respondent's expected accuracy on those items.
"""

import os

# The matrices are small: BLAS threads only add contention on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from ax.evals.adaptive import GOAL_ERROR, GOAL_FRACTION, item_budget, run_adaptive_test  # noqa: E402
from ax.evals.calibration import choose_model  # noqa: E402
from ax.evals.irt import ItemParameters, calibrate, response_probability  # noqa: E402

SCENARIOS = ((300, 100), (72, 20), (72, 50), (72, 100))  # (items, calibration respondents)
BUDGETS = (0.10, 0.15, 0.25)
POOLS, FRESH = 5, 200


def simulate_pool(n_items, rng):
    return ItemParameters(rng.normal(0, 1, n_items), rng.lognormal(0.0, 0.3, n_items), np.zeros(n_items))


def answers(theta, items, rng):
    return (rng.random((theta.size, items.n_items)) < response_probability(theta, items)).astype(float)


def stops_by_budget(row, items, budgets):
    """(items asked, forecast) where each budget's test would have stopped, from one test to the largest budget.

    Selection does not depend on the budget, so a smaller budget's test is a prefix of the largest's.
    """
    test = run_adaptive_test(lambda j: row[j], items, max_items=max(budgets))
    used = [min(budget, len(test.items)) for budget in budgets]
    return [(test.items[:k], test.forecasts[k - 1]) for k in used]


def scenario(n_items, n_calibration, rng):
    """Rows of per-respondent figures for each budget, over POOLS pools of FRESH respondents."""
    per_budget = {fraction: [] for fraction in BUDGETS}
    for _ in range(POOLS):
        truth = simulate_pool(n_items, rng)
        calibration = calibrate(answers(rng.normal(0, 1, n_calibration), truth, rng), choose_model(n_calibration))
        keep = np.flatnonzero(calibration.items.calibrated)  # the pool the full evaluation would score
        items, true_items = calibration.items.take(keep), truth.take(keep)
        budgets = [item_budget(keep.size, fraction) for fraction in BUDGETS]
        theta = rng.normal(0, 1, FRESH)
        fresh = answers(theta, true_items, rng)
        expected = response_probability(theta, true_items)
        for row, p in zip(fresh, expected):
            observed = row.mean()
            estimated = stops_by_budget(row, items, budgets)
            ideal = stops_by_budget(row, true_items, budgets)
            for fraction, budget, (asked, f), (_, t) in zip(BUDGETS, budgets, estimated, ideal):
                k = len(asked)
                random = row[rng.choice(keep.size, size=k, replace=False)].mean()
                floor = (np.where(np.isin(np.arange(keep.size), asked), row, p).mean()) - observed
                per_budget[fraction].append((k, budget, f.accuracy - observed, f.accuracy_standard_error,
                                             random - observed, t.accuracy - observed, floor, observed - p.mean()))
    return {fraction: np.array(rows) for fraction, rows in per_budget.items()}, choose_model(n_calibration)


def main():
    start = time.perf_counter()
    rng = np.random.default_rng(2024)
    print(f"## Adaptive vs. full evaluation ({POOLS} pools x {FRESH} new respondents per row)\n")
    print("| items | calibrated on | budget | items used (mean) | mean \\|err\\| | p90 \\|err\\| | RMSE "
          "| forecast SE (mean) | random: mean \\|err\\| | true items: mean \\|err\\| "
          "| true ability too: mean \\|err\\| | full vs truth: mean \\|err\\| |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    met = []
    for n_items, n_calibration in SCENARIOS:
        rows, model = scenario(n_items, n_calibration, rng)
        for fraction, r in rows.items():
            used, budget, error, se, random, ideal, floor, full = r.T
            points = 100 * np.abs(error)
            if fraction == GOAL_FRACTION:
                met.append(f"{n_items} items / {n_calibration} respondents: "
                           f"{'met' if points.mean() <= 100 * GOAL_ERROR else 'not met'}")
            print(f"| {n_items} | {n_calibration} ({model}) | {fraction:.0%} ({budget[0]:.0f}) | {used.mean():.1f} "
                  f"| {points.mean():.2f} | {np.percentile(points, 90):.2f} | {100 * np.sqrt(np.mean(error**2)):.2f} "
                  f"| {100 * se.mean():.2f} | {100 * np.abs(random).mean():.2f} | {100 * np.abs(ideal).mean():.2f} "
                  f"| {100 * np.abs(floor).mean():.2f} | {100 * np.abs(full).mean():.2f} |", flush=True)
    print(f"\nGoal (mean |err| <= {100 * GOAL_ERROR:.0f} points at {GOAL_FRACTION:.0%} of the items): " + "; ".join(met))
    print(f"\n(bench/adaptive_eval.py, seed 2024, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
