"""Comparisons between configurations, and honest tests of LoRA x GEPA synergy.

Two kinds of evidence live here:

* Pairwise, per-item: Wilson and bootstrap intervals for one accuracy, a paired item
  bootstrap and the exact McNemar test for two configurations answered on the same items,
  and Holm's correction when several such comparisons are reported together.
* The 2x2 design (LoRA off/on x GEPA off/on), given as a long table of
  (run_id, lora, gepa, item_id, correct) rows. "Synergy" is the interaction contrast
  combined - lora - gepa + baseline. Its uncertainty has two sources: which items were
  sampled, and run-to-run variation (seeds, sampling temperature, training noise). An
  item-only bootstrap ignores the second and, with one run per cell and a run SD of 0.25
  logits, rejects a null interaction far more often than its nominal 5% (simulated with
  :func:`simulate_factorial_responses`). Hence the
  run-level hierarchical bootstrap, the mixed model with a random run effect, and a power
  simulation that tells how many items and runs a design needs before it can detect anything.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit
from scipy.stats import bootstrap, norm
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from ax.errors import AxError
from ax.evals.responses import as_response_matrix

CELLS = ("baseline", "lora", "gepa", "lora+gepa")
_CELL_FLAGS = {"baseline": (False, False), "lora": (True, False), "gepa": (False, True), "lora+gepa": (True, True)}
_CONTRAST_SIGNS = {"baseline": 1.0, "lora": -1.0, "gepa": -1.0, "lora+gepa": 1.0}


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval at the given confidence level."""

    estimate: float
    low: float
    high: float
    confidence: float

    def excludes(self, value: float = 0.0) -> bool:
        return not (self.low <= value <= self.high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise AxError(f"confidence = {confidence!r}: must lie strictly between 0 and 1")


def _percentile_interval(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


# --------------------------------------------------------------------------- one or two configurations


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for an accuracy; unlike the Wald interval it behaves at 0% and 100%."""
    _check_confidence(confidence)
    if trials <= 0 or not 0 <= successes <= trials:
        raise AxError(f"wilson_interval(successes={successes!r}, trials={trials!r}): "
                      "need 0 <= successes <= trials, trials > 0")
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    return Interval(successes / trials, float(low), float(high), confidence)


def _correct_vector(correct, name: str) -> np.ndarray:
    vector = as_response_matrix(correct, name=name)
    if vector.shape[0] != 1:
        raise AxError(f"{name} must be a 1-D vector of per-item results, got shape {np.shape(correct)}")
    return vector[0]


def _bootstrap_mean_interval(values: np.ndarray, confidence: float, n_bootstrap: int, seed: int) -> Interval:
    """Percentile bootstrap interval for the mean of per-item values, resampling items."""
    if values.size == 1:  # scipy's bootstrap needs two observations; one item only ever resamples to itself
        return Interval(float(values[0]), float(values[0]), float(values[0]), confidence)
    interval = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_bootstrap,
                         method="percentile", rng=seed).confidence_interval
    return Interval(float(values.mean()), float(interval.low), float(interval.high), confidence)


def bootstrap_accuracy_interval(correct, *, confidence: float = 0.95, n_bootstrap: int = 2000,
                                seed: int = 0) -> Interval:
    """Percentile item-bootstrap interval for one configuration's accuracy (NaN items skipped)."""
    _check_confidence(confidence)
    vector = _correct_vector(correct, "correct")
    vector = vector[~np.isnan(vector)]
    if vector.size == 0:
        raise AxError("correct has no answered items")
    return _bootstrap_mean_interval(vector, confidence, n_bootstrap, seed)


def _paired(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    """Two per-item result vectors on the same items, keeping items answered in both."""
    a, b = _correct_vector(correct_a, "correct_a"), _correct_vector(correct_b, "correct_b")
    if a.shape != b.shape:
        raise AxError(f"correct_a has {a.size} items but correct_b has {b.size}: pair them on the same items")
    both = ~np.isnan(a) & ~np.isnan(b)
    if not both.any():
        raise AxError("correct_a and correct_b have no item answered by both")
    return a[both], b[both]


def paired_bootstrap_difference(correct_a, correct_b, *, confidence: float = 0.95,
                                n_bootstrap: int = 2000, seed: int = 0) -> Interval:
    """Interval for accuracy(a) - accuracy(b), resampling items jointly for both configurations.

    Resampling pairs keeps the item-level correlation (both fail the hard items), which makes
    this interval much narrower than one built from two independent intervals.
    """
    _check_confidence(confidence)
    a, b = _paired(correct_a, correct_b)
    return _bootstrap_mean_interval(a - b, confidence, n_bootstrap, seed)  # per-item differences keep the pairs


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pair counts and the two-sided exact p-value."""

    only_a_correct: int
    only_b_correct: int
    p_value: float


def mcnemar_exact(correct_a, correct_b) -> McNemarResult:
    """Exact McNemar test: do two configurations differ on the items where they disagree?

    Under the null each discordant item is equally likely to favour either configuration,
    so the count favouring ``a`` is Binomial(discordant, 1/2); the two-sided p-value doubles
    the smaller tail (capped at 1; 1 when there are no discordant items).
    """
    a, b = _paired(correct_a, correct_b)
    both, only_a = int(np.sum((a == 1) & (b == 1))), int(np.sum((a == 1) & (b == 0)))
    only_b, neither = int(np.sum((a == 0) & (b == 1))), int(np.sum((a == 0) & (b == 0)))
    return McNemarResult(only_a, only_b, float(mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue))


def holm_adjust(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order; reject where adjusted <= alpha.

    Controls the family-wise error rate like Bonferroni under any dependence between tests,
    but is uniformly more powerful.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size == 0 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise AxError(f"p_values must be a non-empty 1-D list of probabilities in [0, 1], got {p_values!r}")
    return multipletests(p, method="holm")[1]


# --------------------------------------------------------------------------- the 2x2 design


class ResponseRow(NamedTuple):
    """One scored answer: which run (seed) of which configuration answered which item."""

    run_id: str
    lora: bool
    gepa: bool
    item_id: str
    correct: bool


@dataclass(frozen=True)
class FactorialResponses:
    """The long table of a LoRA x GEPA comparison: parallel arrays, one entry per answer.

    Ids are stored as strings. Each run belongs to exactly one cell, and answers each item at
    most once; items are crossed with cells (the same item set is meant for all four).
    """

    run_id: np.ndarray
    lora: np.ndarray
    gepa: np.ndarray
    item_id: np.ndarray
    correct: np.ndarray

    def __post_init__(self):
        run_id = np.asarray(self.run_id).astype(str)
        item_id = np.asarray(self.item_id).astype(str)
        lora, gepa = np.asarray(self.lora), np.asarray(self.gepa)
        correct = np.asarray(self.correct)
        lengths = {len(x) for x in (run_id, item_id, lora, gepa, correct)}
        if len(lengths) != 1 or run_id.ndim != 1:
            raise AxError(f"FactorialResponses columns must be 1-D and of one length, got lengths {sorted(lengths)}")
        for name, column in (("lora", lora), ("gepa", gepa), ("correct", correct)):
            bad = ~np.isin(column, (0, 1))
            if bad.any():
                i = int(np.argmax(bad))
                raise AxError(f"FactorialResponses.{name}[{i}] = {column[i].item()!r}: must be a bool (or 0/1)")
        lora, gepa, correct = lora.astype(bool), gepa.astype(bool), correct.astype(np.int8)
        runs, first = np.unique(run_id, return_index=True)
        run_index = np.searchsorted(runs, run_id)
        mixed = (lora != lora[first][run_index]) | (gepa != gepa[first][run_index])
        if mixed.any():
            raise AxError(f"run {str(run_id[int(np.argmax(mixed))])!r} appears under more than one lora/gepa cell")
        items, item_index = np.unique(item_id, return_inverse=True)
        codes, counts = np.unique(run_index * items.size + item_index, return_counts=True)
        if np.any(counts > 1):
            run, item = divmod(int(codes[np.argmax(counts > 1)]), items.size)
            raise AxError(f"run {str(runs[run])!r} answers item {str(items[item])!r} more than once")
        columns = {"run_id": run_id, "item_id": item_id, "lora": lora, "gepa": gepa, "correct": correct}
        for name, value in columns.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_rows(cls, rows: Iterable[ResponseRow | tuple]) -> FactorialResponses:
        rows = [ResponseRow(*row) for row in rows]
        if not rows:
            raise AxError("FactorialResponses.from_rows got no rows")
        columns = list(zip(*rows))
        return cls(*(np.asarray(column) for column in columns))


@dataclass(frozen=True)
class _Cell:
    """One cell of the design as runs x items arrays over the table's common item index."""

    correct: np.ndarray
    seen: np.ndarray


def _cells(table: FactorialResponses) -> dict[str, _Cell]:
    items, item_index = np.unique(table.item_id, return_inverse=True)
    cells = {}
    for name, (lora, gepa) in _CELL_FLAGS.items():
        rows = (table.lora == lora) & (table.gepa == gepa)
        if not rows.any():
            raise AxError(f"the table has no runs in the {name!r} cell (lora={lora}, gepa={gepa}); all four are needed")
        runs, run_index = np.unique(table.run_id[rows], return_inverse=True)
        correct = np.zeros((runs.size, items.size))
        seen = np.zeros((runs.size, items.size))
        correct[run_index, item_index[rows]] = table.correct[rows]
        seen[run_index, item_index[rows]] = 1.0
        cells[name] = _Cell(correct, seen)
    return cells


def _contrasts(cells: dict[str, _Cell], run_weights: dict[str, np.ndarray], item_weights: np.ndarray):
    """Interaction contrast on accuracy and logit scales for each row of bootstrap weights.

    A cell's accuracy is its pooled share correct, weighting each run and item by how often
    the replicate drew it. The logit uses counts with 0.5 added to each side so that a cell at
    0% or 100% stays finite.
    """
    accuracy = np.zeros(item_weights.shape[0])
    log_odds = np.zeros(item_weights.shape[0])
    for name, cell in cells.items():
        correct = np.sum((run_weights[name] @ cell.correct) * item_weights, axis=1)
        seen = np.sum((run_weights[name] @ cell.seen) * item_weights, axis=1)
        accuracy += _CONTRAST_SIGNS[name] * correct / seen
        log_odds += _CONTRAST_SIGNS[name] * np.log((correct + 0.5) / (seen - correct + 0.5))
    return accuracy, log_odds


@dataclass(frozen=True)
class InteractionContrast:
    """Synergy = (lora+gepa) - lora - gepa + baseline, in accuracy points and in log-odds.

    The logit contrast is on pooled (population-averaged) cell accuracies; it is smaller in
    magnitude than the mixed model's item-conditional coefficient when items vary in difficulty.
    """

    accuracy: float
    logit: float
    cell_accuracy: dict[str, float]
    runs_per_cell: dict[str, int]


def interaction_contrast(table: FactorialResponses) -> InteractionContrast:
    """The synergy point estimate, with each cell's pooled accuracy and number of runs."""
    cells = _cells(table)
    n_items = next(iter(cells.values())).correct.shape[1]
    ones = {name: np.ones((1, cell.correct.shape[0])) for name, cell in cells.items()}
    accuracy, log_odds = _contrasts(cells, ones, np.ones((1, n_items)))
    return InteractionContrast(
        accuracy=float(accuracy[0]), logit=float(log_odds[0]),
        cell_accuracy={name: float(cell.correct.sum() / cell.seen.sum()) for name, cell in cells.items()},
        runs_per_cell={name: cell.correct.shape[0] for name, cell in cells.items()},
    )


@dataclass(frozen=True)
class InteractionInterval:
    """Hierarchical-bootstrap intervals for the interaction contrast.

    ``captures_run_variance`` is False when some cell has a single run: then nothing can be
    learned about run-to-run variation, the interval reflects item sampling only, and it is
    too narrow whenever runs do vary.
    """

    accuracy: Interval
    logit: Interval
    runs_per_cell: dict[str, int]
    n_bootstrap: int
    captures_run_variance: bool


def hierarchical_bootstrap_interaction(table: FactorialResponses, *, confidence: float = 0.95,
                                       n_bootstrap: int = 2000, seed: int = 0) -> InteractionInterval:
    """Percentile intervals for the interaction, resampling runs within each cell, then items.

    Each replicate draws, in every cell independently, as many runs as it has (with
    replacement), and one draw of items (with replacement) shared by all cells, since the
    same items are answered in all four. With few runs per cell the run level is resampled
    from very few values, so the interval is still somewhat narrow; the mixed model is the
    complementary check.
    """
    _check_confidence(confidence)
    cells = _cells(table)
    # Hand-written: scipy.stats.bootstrap resamples observations, not runs per cell plus one item draw for all cells.
    rng = np.random.default_rng(seed)
    n_items = next(iter(cells.values())).correct.shape[1]
    run_weights = {
        name: rng.multinomial(cell.correct.shape[0], np.full(cell.correct.shape[0], 1 / cell.correct.shape[0]),
                              size=n_bootstrap).astype(float)
        for name, cell in cells.items()
    }
    item_weights = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_bootstrap).astype(float)
    accuracy_reps, logit_reps = _contrasts(cells, run_weights, item_weights)
    point = interaction_contrast(table)
    return InteractionInterval(
        accuracy=_percentile_interval(point.accuracy, accuracy_reps, confidence),
        logit=_percentile_interval(point.logit, logit_reps, confidence),
        runs_per_cell=point.runs_per_cell, n_bootstrap=n_bootstrap,
        captures_run_variance=min(point.runs_per_cell.values()) >= 2,
    )


@dataclass(frozen=True)
class MixedModelInteraction:
    """The lora:gepa coefficient of ``correct ~ lora * gepa + (1|item) + (1|run)``, in logits.

    ``estimate`` and ``posterior_sd`` are the mode and Laplace standard deviation of the
    posterior of the fixed and random effects *given* the random-effect SDs, which are set at
    their variational-Bayes posterior means (``item_sd``, ``run_sd``) from statsmodels'
    ``BinomialBayesMixedGLM.fit_vb`` (run with L-BFGS: same optimum as its default BFGS,
    and much faster with hundreds of items); the same conditioning on variance components that lme4's
    standard errors use. ``p_value`` is two-sided from that normal approximation,
    2 * Phi(-|estimate| / posterior_sd), numerically a Wald p-value. Priors: N(0, 2^2) on fixed
    effects and log-normal(0, 1) on the random-effect SDs (statsmodels' defaults).

    In simulation (100-300 items, 3-5 runs per cell, run SD 0.25) ``posterior_sd`` matched or
    exceeded the sampling SD of the estimate and a null interaction was rejected at most at
    the nominal rate. ``captures_run_variance`` is False when some cell has one run: the run
    SD is then not identified (it is fixed by the prior) and the interval is not trustworthy;
    the same simulation with one run per cell rejected a null well above the nominal rate.
    """

    estimate: float
    posterior_sd: float
    p_value: float
    item_sd: float
    run_sd: float
    captures_run_variance: bool


MAX_COMPONENT_SD = 5.0  # logits; a fitted item or run SD beyond this is a separated, degenerate fit


def mixed_model_interaction(table: FactorialResponses, *, seed: int = 0) -> MixedModelInteraction:
    """Fit the logistic mixed model with crossed random intercepts for items and runs.

    Why not statsmodels' own standard deviations: ``fit_vb`` is mean-field, so it treats the
    interaction as independent of the run effects it is confounded with and reports SDs
    several times too small (0.09 where the sampling SD is about 0.3, 3 runs per cell);
    ``fit_map`` optimizes the variance components jointly and collapses the item SD to 0.
    The coefficient is item- and run-conditional: the log-odds interaction for a typical
    item and run, larger in magnitude than the pooled logit contrast when items vary a lot.
    """
    fewest_runs = min(cell.correct.shape[0] for cell in _cells(table).values())  # also checks all 4 cells exist
    frame = pd.DataFrame({
        "correct": table.correct.astype(float), "lora": table.lora.astype(float),
        "gepa": table.gepa.astype(float), "item": table.item_id, "run": table.run_id,
    })
    model = BinomialBayesMixedGLM.from_formula(
        "correct ~ lora * gepa", {"item": "0 + C(item)", "run": "0 + C(run)"}, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with np.errstate(over="raise", invalid="raise"):
            try:
                fit = model.fit_vb(fit_method="L-BFGS-B", rng=seed)
            except FloatingPointError as error:
                raise AxError(f"the mixed model did not converge (variational fit overflowed: {error})") from None
    design = sparse.hstack([sparse.csr_array(np.asarray(model.exog)), model.exog_vc]).tocsr()
    prior_precision = np.concatenate([np.full(model.k_fep, model.fe_p**-2),
                                      np.exp(-2 * fit.vcp_mean[model.ident])])
    effects = np.concatenate([fit.fe_mean, fit.vc_mean])
    y = np.asarray(model.endog, dtype=float)
    for _ in range(50):  # Newton steps to the conditional posterior mode, from the VB mean
        p = expit(design @ effects)
        weighted = design.multiply((p * (1 - p))[:, None]).tocsr()
        precision = (design.T @ weighted).toarray() + np.diag(prior_precision)
        step = np.linalg.solve(precision, design.T @ (y - p) - prior_precision * effects)
        effects += step
        if np.max(np.abs(step)) < 1e-8:
            break
    else:
        raise AxError("the mixed model did not converge (Newton steps to the posterior mode still moving after 50)")
    k = list(model.fep_names).index("lora:gepa")
    estimate = float(effects[k])
    sd = float(np.sqrt(np.linalg.inv(precision)[k, k]))
    item_sd, run_sd = (float(np.exp(fit.vcp_mean[list(model.vcp_names).index(name)])) for name in ("item", "run"))
    if not (np.isfinite(estimate) and np.isfinite(sd) and sd > 0):
        raise AxError(f"the mixed model's fit is singular (interaction {estimate}, SD {sd})")
    if max(item_sd, run_sd) > MAX_COMPONENT_SD:
        # Such a spread means items (or runs) separate the answers completely, e.g. every configuration
        # answers each item alike: the cell effects are not identified and any p-value is an artefact.
        raise AxError(f"the mixed model's fit is degenerate (item SD {item_sd:.1f}, run SD {run_sd:.1f} logits: "
                      "the answers are separated by item or run, so the interaction is not identified)")
    return MixedModelInteraction(estimate, sd, float(2 * norm.sf(abs(estimate) / sd)), item_sd, run_sd,
                                 captures_run_variance=fewest_runs >= 2)


def simulate_factorial_responses(*, n_items: int, runs_per_cell: int, interaction_logit: float,
                                 baseline_logit: float = 0.0, lora_logit: float = 0.0,
                                 gepa_logit: float = 0.0, item_sd: float = 1.0, run_sd: float = 0.25,
                                 seed: int = 0) -> FactorialResponses:
    """Draw a 2x2 comparison from the logistic model the mixed model assumes.

    logit P(correct) = baseline + lora*L + gepa*G + interaction*L*G - item_effect + run_effect,
    item effects ~ N(0, item_sd) shared by all cells, run effects ~ N(0, run_sd) per run.
    """
    if n_items < 1 or runs_per_cell < 1:
        raise AxError(f"n_items = {n_items!r}, runs_per_cell = {runs_per_cell!r}: both must be at least 1")
    rng = np.random.default_rng(seed)
    item_effect = rng.normal(0.0, item_sd, n_items)
    flags = np.array([_CELL_FLAGS[name] for name in CELLS for _ in range(runs_per_cell)], dtype=float)
    lora, gepa = flags[:, 0], flags[:, 1]
    run_logit = (baseline_logit + lora_logit * lora + gepa_logit * gepa + interaction_logit * lora * gepa
                 + rng.normal(0.0, run_sd, lora.size))
    correct = rng.random((lora.size, n_items)) < 1 / (1 + np.exp(-(run_logit[:, None] - item_effect)))
    n_runs = lora.size
    return FactorialResponses(
        run_id=np.repeat(np.arange(n_runs), n_items), lora=np.repeat(lora, n_items).astype(bool),
        gepa=np.repeat(gepa, n_items).astype(bool), item_id=np.tile(np.arange(n_items), n_runs),
        correct=correct.reshape(-1),
    )


@dataclass(frozen=True)
class PowerEstimate:
    """Share of simulated designs in which the interaction was detected, with its Monte Carlo SE."""

    power: float
    standard_error: float
    n_simulations: int


def interaction_power(interaction_logit: float, *, n_items: int, runs_per_cell: int, alpha: float = 0.05,
                      run_sd: float = 0.25, item_sd: float = 1.0, baseline_logit: float = 0.0,
                      lora_logit: float = 0.0, gepa_logit: float = 0.0, n_simulations: int = 200,
                      n_bootstrap: int = 500, seed: int = 0) -> PowerEstimate:
    """Probability that a design of ``n_items`` x ``runs_per_cell`` detects a given logit interaction.

    Simulates the design with :func:`simulate_factorial_responses` and counts how often the
    (1 - alpha) hierarchical-bootstrap interval of the logit contrast excludes 0, i.e. the
    power of the procedure actually reported, not of an idealized test. Run it before
    spending compute: with run SD 0.25 and 3 runs per cell, a 0.5-logit interaction's power
    barely rises from 200 items to 500, so past a few hundred items more runs, not more items,
    is what helps. With one run per cell the figure is inflated by false positives (run it with
    ``interaction_logit=0``: a null is "detected" far more often than ``alpha``).
    """
    if not 0 < alpha < 1:
        raise AxError(f"alpha = {alpha!r}: must lie strictly between 0 and 1")
    if n_simulations < 1:
        raise AxError(f"n_simulations = {n_simulations!r}: must be at least 1")
    seeds = np.random.default_rng(seed).integers(0, 2**63 - 1, size=(n_simulations, 2))
    detected = 0
    for simulation_seed, bootstrap_seed in seeds:
        table = simulate_factorial_responses(
            n_items=n_items, runs_per_cell=runs_per_cell, interaction_logit=interaction_logit,
            baseline_logit=baseline_logit, lora_logit=lora_logit, gepa_logit=gepa_logit,
            item_sd=item_sd, run_sd=run_sd, seed=int(simulation_seed))
        interval = hierarchical_bootstrap_interaction(table, confidence=1 - alpha, n_bootstrap=n_bootstrap,
                                                      seed=int(bootstrap_seed))
        detected += interval.logit.excludes(0.0)
    power = detected / n_simulations
    return PowerEstimate(power, float(np.sqrt(power * (1 - power) / n_simulations)), n_simulations)
