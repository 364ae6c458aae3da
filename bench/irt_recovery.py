"""How well ax.evals recovers known IRT parameters, and how it agrees with girth.

Run: .venv/bin/python bench/irt_recovery.py   (a few minutes on 2 cores; prints Markdown tables)

Simulated truth: difficulty ~ N(0, 1), ability ~ N(0, 1); 2PL discrimination ~ lognormal(0, 0.3),
1PL data generated with discrimination 1. Each size is replicated and the figures averaged;
r is Pearson's correlation with the truth, RMSE on the same scale (log scale for
discrimination). Items every respondent passed or failed are excluded and counted ("excl").
Adaptive testing on such pools is measured by bench/adaptive_eval.py.
"""

import os

# The matrices are small: BLAS threads only add contention on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from ax.evals.irt import ItemParameters, calibrate, estimate_ability_eap, response_probability  # noqa: E402

RESPONDENTS = (4, 25, 100, 400)
ITEMS = (100, 300)
REPLICATES = 3


def simulate(n_respondents, n_items, model, rng):
    a = np.ones(n_items) if model == "1pl" else rng.lognormal(0.0, 0.3, n_items)
    truth = ItemParameters(rng.normal(0, 1, n_items), a, np.zeros(n_items))
    theta = rng.normal(0, 1, n_respondents)
    return truth, theta, (rng.random((n_respondents, n_items)) < response_probability(theta, truth)).astype(float)


def corr(x, y):
    return float(np.corrcoef(x, y)[0, 1]) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")


def rmse(x, y):
    return float(np.sqrt(np.mean((np.asarray(x) - np.asarray(y)) ** 2)))


def recovery(model, n_respondents, n_items, rng):
    """Mean recovery figures over REPLICATES fits, and the first replicate's data for girth."""
    rows, first = [], None
    for _ in range(REPLICATES):
        truth, theta, responses = simulate(n_respondents, n_items, model, rng)
        start = time.perf_counter()
        cal = calibrate(responses, model)
        seconds = time.perf_counter() - start
        keep = np.flatnonzero(cal.items.calibrated)
        items, true_items = cal.items.take(keep), truth.take(keep)
        ability = estimate_ability_eap(responses, cal.items).theta
        rows.append([
            corr(true_items.difficulty, items.difficulty), rmse(true_items.difficulty, items.difficulty),
            corr(true_items.discrimination, items.discrimination),
            rmse(np.log(true_items.discrimination), np.log(items.discrimination)),
            corr(theta, ability), rmse(theta, ability), len(cal.uninformative), float(cal.converged),
        ])
        first = first or (responses[:, keep], true_items, items, seconds)
    return np.mean(np.array(rows), axis=0), first


def fmt(value, digits=2):
    return "—" if not np.isfinite(value) else f"{value:.{digits}f}"


def print_recovery(rng):
    """Recovery table; returns the first replicate of each size for the girth comparison."""
    print(f"## Parameter recovery (mean of {REPLICATES} replicates)\n")
    print("| model | resp x items | r(b) | RMSE(b) | r(a) | RMSE(log a) | r(theta) | RMSE(theta) | excl | converged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    firsts = {}
    for model in ("1pl", "2pl"):
        for n_items in ITEMS:
            for n_respondents in RESPONDENTS:
                m, firsts[model, n_respondents, n_items] = recovery(model, n_respondents, n_items, rng)
                r_a = "—" if model == "1pl" else fmt(m[2])
                print(f"| {model} | {n_respondents} x {n_items} | {fmt(m[0])} | {fmt(m[1])} | {r_a} | {fmt(m[3])} "
                      f"| {fmt(m[4])} | {fmt(m[5])} | {m[6]:.1f} | {m[7]:.0%} |", flush=True)
    return firsts


def print_girth_agreement(firsts):
    """girth on the same matrices: first replicate only, and 2PL at 300 items only for 100 x 300,
    because girth's 2PL needs about a minute of CPU per 300-item fit."""
    import girth

    print("\n## Agreement with girth on the same matrices\n")
    print("First replicate of each size, items calibrated by ax only; 2PL at 300 items only for 100 x 300.\n")
    print("| model | resp x items | r(b, girth) | r(a, girth) | r(b, truth): ax | r(b, truth): girth "
          "| seconds: ax | seconds: girth |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, n_respondents, n_items), (responses, truth, ours, seconds) in firsts.items():
        if model == "2pl" and n_items == 300 and n_respondents != 100:
            continue
        start = time.perf_counter()
        data = responses.T.astype(int)  # girth wants items x participants
        if model == "1pl":
            b, a = girth.rasch_mml(data)["Difficulty"], None
        else:
            result = girth.twopl_mml(data)
            b, a = result["Difficulty"], result["Discrimination"]
        girth_seconds = time.perf_counter() - start
        r_a = "—" if a is None else fmt(corr(a, ours.discrimination), 3)
        print(f"| {model} | {n_respondents} x {n_items} | {fmt(corr(b, ours.difficulty), 3)} | {r_a} "
              f"| {fmt(corr(truth.difficulty, ours.difficulty))} | {fmt(corr(truth.difficulty, b))} "
              f"| {seconds:.2f} | {girth_seconds:.1f} |", flush=True)


def main():
    start = time.perf_counter()
    rng = np.random.default_rng(2024)
    firsts = print_recovery(rng)
    print_girth_agreement(firsts)
    print(f"\n(bench/irt_recovery.py, seed 2024, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
