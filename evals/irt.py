"""Item response theory: calibrate an item pool once, then score configurations against it.

Why IRT rather than raw accuracy: items differ in difficulty and in how sharply they separate
strong from weak systems. Calibrating the items on many runs and then scoring each
configuration's ability theta on that fixed scale gives comparable scores with standard
errors, tells which items carry information, and lets adaptive testing use a fraction of them.

Model (logistic, no 1.7 scaling constant)::

    P(correct | theta) = c + (1 - c) / (1 + exp(-a * (theta - b)))

``b`` difficulty, ``a`` discrimination, ``c`` guessing (3PL only, 0 otherwise). ``a`` is
estimated on the log scale, so it stays positive and cannot flip sign (the failure reported
in py-irt#25). "1pl" estimates one discrimination shared by all items, which is the Rasch
model with the ability variance free; under it ability ranks respondents who answered the
same items exactly as raw accuracy does. The ability distribution is fixed at N(0, 1) to
identify the scale.

Responses are respondents x items with 1/0/NaN (see ``ax.evals.responses``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, logit, logsumexp
from scipy.stats import norm

from ax.errors import AxError
from ax.evals.responses import UninformativeItem, as_response_matrix, find_uninformative_items

IrtModel = Literal["1pl", "2pl", "3pl"]
_PROBABILITY_FLOOR = 1e-10


# --------------------------------------------------------------------------- item model


@dataclass(frozen=True)
class ItemParameters:
    """Parameters of an item pool, one entry per item (NaN for items left uncalibrated).

    Scoring treats an item with NaN parameters as not administered, so a pool calibrated with
    some uninformative items excluded can still be used with the full response matrix.
    """

    difficulty: np.ndarray
    discrimination: np.ndarray
    guessing: np.ndarray

    def __post_init__(self):
        arrays = {name: np.asarray(getattr(self, name), dtype=float)
                  for name in ("difficulty", "discrimination", "guessing")}
        shapes = {name: a.shape for name, a in arrays.items()}
        if len(set(shapes.values())) != 1 or arrays["difficulty"].ndim != 1:
            raise AxError(f"item parameters must be 1-D arrays of one length, got shapes {shapes}")
        bad_a = arrays["discrimination"] <= 0
        if bad_a.any():
            i = int(np.argmax(bad_a))
            raise AxError(f"discrimination[{i}] = {arrays['discrimination'][i]:g}: must be positive")
        bad_c = (arrays["guessing"] < 0) | (arrays["guessing"] >= 1)
        if bad_c.any():
            i = int(np.argmax(bad_c))
            raise AxError(f"guessing[{i}] = {arrays['guessing'][i]:g}: must lie in [0, 1)")
        for name, a in arrays.items():
            object.__setattr__(self, name, a)

    @property
    def n_items(self) -> int:
        return self.difficulty.shape[0]

    @property
    def calibrated(self) -> np.ndarray:
        """Boolean mask of items with usable (finite) parameters."""
        return (np.isfinite(self.difficulty) & np.isfinite(self.discrimination)
                & np.isfinite(self.guessing))

    def take(self, indices) -> ItemParameters:
        """The sub-pool of the given item indices, in that order."""
        indices = np.asarray(indices, dtype=int)
        return ItemParameters(self.difficulty[indices], self.discrimination[indices], self.guessing[indices])


def response_probability(theta, items: ItemParameters) -> np.ndarray:
    """P(correct) for each ability in ``theta`` (rows) and each item (columns)."""
    theta = np.asarray(theta, dtype=float).reshape(-1, 1)
    return items.guessing + (1 - items.guessing) * expit(items.discrimination * (theta - items.difficulty))


def item_information(theta, items: ItemParameters) -> np.ndarray:
    """Fisher information of each item (columns) at each ability (rows); 0 for uncalibrated items.

    ``I = a^2 * (1 - P) / P * ((P - c) / (1 - c))^2``, which reduces to ``a^2 P (1 - P)``
    without guessing. Adaptive testing picks the item with the most information at the
    current ability estimate.
    """
    p = np.clip(response_probability(theta, items), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    c = items.guessing
    info = items.discrimination**2 * (1 - p) / p * ((p - c) / (1 - c)) ** 2
    return np.where(items.calibrated, info, 0.0)


def test_information(theta, items: ItemParameters) -> np.ndarray:
    """Information of the whole pool at each ability; 1/sqrt of it bounds the ability SE."""
    return item_information(theta, items).sum(axis=1)


def predicted_accuracy(theta: float, items: ItemParameters) -> float:
    """Expected accuracy over the calibrated items for a respondent of ability ``theta``."""
    p = response_probability(theta, items)[0]
    return float(p[items.calibrated].mean())


def normal_quadrature(n_points: int, mean: float = 0.0, sd: float = 1.0, bound: float = 6.0):
    """Equally spaced nodes over mean +/- bound*sd and normalized log-weights of N(mean, sd)."""
    nodes = np.linspace(mean - bound * sd, mean + bound * sd, n_points)
    log_weights = norm.logpdf(nodes, mean, sd)
    return nodes, log_weights - logsumexp(log_weights)


def _node_log_likelihood(matrix: np.ndarray, items: ItemParameters, nodes: np.ndarray) -> np.ndarray:
    """log P(responses | theta = node) for each respondent (rows) and node (columns).

    Missing responses and uncalibrated items contribute nothing.
    """
    usable = items.calibrated
    matrix = matrix[:, usable]
    items = items.take(np.flatnonzero(usable))
    seen = ~np.isnan(matrix)
    correct = np.where(seen, matrix, 0.0)
    p = np.clip(response_probability(nodes, items), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    return correct @ np.log(p).T + (seen - correct) @ np.log1p(-p).T


def _check_pool(matrix: np.ndarray, items: ItemParameters) -> None:
    if matrix.shape[1] != items.n_items:
        raise AxError(
            f"responses have {matrix.shape[1]} item columns but the item parameters describe "
            f"{items.n_items} items"
        )


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class CalibrationPriors:
    """Priors that keep item estimates finite with few respondents.

    difficulty ~ N(0, difficulty_sd); log(discrimination) ~ N(0, log_discrimination_sd)
    (BILOG's default); guessing ~ Beta(guessing_alpha, guessing_beta), mean about 0.23,
    near chance for 4-option multiple choice. The difficulty prior is wide on purpose: summed
    over hundreds of items, a tighter one pulls the common scale (the 1PL discrimination)
    upward: on simulated 100 respondents x 300 items (bench/irt_recovery.py's generator), SD 2
    inflated it several times as much as SD 5.
    """

    difficulty_sd: float = 5.0
    log_discrimination_sd: float = 0.5
    guessing_alpha: float = 5.0
    guessing_beta: float = 17.0

    def __post_init__(self):
        for name in ("difficulty_sd", "log_discrimination_sd"):
            if not getattr(self, name) > 0:
                raise AxError(f"CalibrationPriors.{name} = {getattr(self, name)!r}: must be positive")
        for name in ("guessing_alpha", "guessing_beta"):
            if not getattr(self, name) >= 1:
                raise AxError(f"CalibrationPriors.{name} = {getattr(self, name)!r}: must be at least 1")


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate`.

    ``items`` covers every column of the input; uninformative items (listed in
    ``uninformative``) have NaN parameters. ``log_likelihood`` is the marginal log-likelihood
    of the calibrated items at the estimates, priors excluded.
    """

    model: IrtModel
    items: ItemParameters
    uninformative: tuple[UninformativeItem, ...]
    converged: bool
    iterations: int
    max_parameter_change: float
    log_likelihood: float
    n_respondents: int


@dataclass(frozen=True)
class _Layout:
    """How one model's free parameters are packed into one vector for EM.

    1pl: [log a (shared), b...]; 2pl: [log a..., b...]; 3pl: [log a..., b..., logit c...].
    """

    model: IrtModel
    n_items: int

    def unpack(self, vector: np.ndarray):
        k = self.n_items
        if self.model == "1pl":
            log_a, b = np.full(k, vector[0]), vector[1:]
        else:
            log_a, b = vector[:k], vector[k:2 * k]
        c = expit(vector[2 * k:]) if self.model == "3pl" else np.zeros(k)
        return np.exp(log_a), b, c

    def items(self, vector: np.ndarray) -> ItemParameters:
        a, b, c = self.unpack(vector)
        return ItemParameters(difficulty=b, discrimination=a, guessing=c)

    def pack(self, log_a: np.ndarray, b: np.ndarray, logit_c: np.ndarray | None) -> np.ndarray:
        head = [log_a[:1]] if self.model == "1pl" else [log_a]
        tail = [logit_c] if self.model == "3pl" else []
        return np.concatenate(head + [b] + tail)


def _scoring_step(vector, layout: _Layout, nodes, correct_at, seen_at, priors: CalibrationPriors):
    """M-step: one Fisher-scoring step on the expected complete-data log posterior.

    ``correct_at`` / ``seen_at`` (nodes x items) are the expected numbers of correct and of
    administered responses at each quadrature node, from the E-step. Items are independent
    given these counts, so each solves its own 2x2 (3x3 for 3PL) system; the 1PL's shared
    discrimination couples them through an arrow-shaped system solved exactly. Steps are
    capped at one unit (on the log / logit scales) so early iterations cannot overshoot.
    """
    a, b, c = layout.unpack(vector)
    log_a = np.log(a)
    theta = nodes[:, None]
    s = expit(a * (theta - b))
    p = np.clip(c + (1 - c) * s, _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    slope = (1 - c) * s * (1 - s)
    derivatives = [slope * a * (theta - b), -slope * a]  # dP/d log a, dP/d b
    if layout.model == "3pl":
        derivatives.append((1 - s) * c * (1 - c))  # dP/d logit c
    dp = np.stack(derivatives, axis=-1)  # nodes x items x parameters
    gradient = np.einsum("qi,qik->ik", (correct_at - seen_at * p) / (p * (1 - p)), dp)
    information = np.einsum("qi,qik,qil->ikl", seen_at / (p * (1 - p)), dp, dp)

    gradient[:, 1] -= b / priors.difficulty_sd**2
    information[:, 1, 1] += 1 / priors.difficulty_sd**2
    a_prior_information = 1 / priors.log_discrimination_sd**2
    a_prior_gradient = -log_a * a_prior_information
    if layout.model == "3pl":
        alpha, beta = priors.guessing_alpha, priors.guessing_beta
        gradient[:, 2] += (alpha - 1) * (1 - c) - (beta - 1) * c
        information[:, 2, 2] += (alpha + beta - 2) * c * (1 - c)

    if layout.model == "1pl":
        g_a = gradient[:, 0].sum() + a_prior_gradient[0]
        h_aa = information[:, 0, 0].sum() + a_prior_information
        h_ab, h_bb, g_b = information[:, 0, 1], information[:, 1, 1], gradient[:, 1]
        step_a = (g_a - np.sum(h_ab * g_b / h_bb)) / (h_aa - np.sum(h_ab**2 / h_bb))
        step = np.stack([np.full_like(b, step_a), (g_b - h_ab * step_a) / h_bb], axis=1)
    else:
        gradient[:, 0] += a_prior_gradient
        information[:, 0, 0] += a_prior_information
        step = np.linalg.solve(information, gradient[..., None])[..., 0]
    step = np.clip(step, -1.0, 1.0)
    logit_c = logit(c) + step[:, 2] if layout.model == "3pl" else None
    return layout.pack(log_a + step[:, 0], b + step[:, 1], logit_c)


def calibrate(responses, model: IrtModel = "2pl", *, priors: CalibrationPriors | None = None,
              max_iterations: int = 500, tolerance: float = 1e-4,
              quadrature_points: int = 41) -> Calibration:
    """Estimate item parameters by marginal maximum a posteriori with EM over a quadrature grid.

    E-step: each respondent's posterior over ``quadrature_points`` ability nodes (N(0, 1)
    prior), summed into expected correct/administered counts per node and item. M-step: a
    Fisher-scoring step on the expected log-likelihood plus log-priors (Bock-Aitkin EM with a
    one-step M-step). Stops when no parameter (on the log/logit scale it is estimated on)
    moves more than ``tolerance`` in an iteration.

    Items every respondent passes or fails, or nobody answered, are excluded and reported in
    ``Calibration.uninformative``.
    """
    if model not in ("1pl", "2pl", "3pl"):
        raise AxError(f"model = {model!r}: choose '1pl', '2pl' or '3pl'")
    priors = priors or CalibrationPriors()
    matrix = as_response_matrix(responses)
    uninformative = find_uninformative_items(matrix)
    keep = np.ones(matrix.shape[1], dtype=bool)
    keep[[item.index for item in uninformative]] = False
    if not keep.any():
        raise AxError(
            f"none of the {matrix.shape[1]} items can be calibrated: every item was answered "
            "the same way by all respondents (or by none)"
        )
    data = matrix[:, keep]
    seen = ~np.isnan(data)
    correct = np.where(seen, data, 0.0)
    layout = _Layout(model, data.shape[1])
    nodes, log_weights = normal_quadrature(quadrature_points, bound=5.0)

    share = (correct.sum(axis=0) + 0.5) / (seen.sum(axis=0) + 1.0)
    guess0 = priors.guessing_alpha / (priors.guessing_alpha + priors.guessing_beta)
    n = layout.n_items
    vector = layout.pack(np.zeros(n), -logit(share), np.full(n, logit(guess0)))

    converged, change, iteration = False, np.inf, 0
    for iteration in range(1, max_iterations + 1):
        joint = _node_log_likelihood(data, layout.items(vector), nodes) + log_weights
        posterior = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
        correct_at, seen_at = posterior.T @ correct, posterior.T @ seen
        updated = _scoring_step(vector, layout, nodes, correct_at, seen_at, priors)
        change = float(np.max(np.abs(updated - vector)))
        vector = updated
        if change < tolerance:
            converged = True
            break

    items = layout.items(vector)
    log_likelihood = float(logsumexp(_node_log_likelihood(data, items, nodes) + log_weights, axis=1).sum())
    full = {}
    for name in ("difficulty", "discrimination", "guessing"):
        full[name] = np.full(matrix.shape[1], np.nan)
        full[name][keep] = getattr(items, name)
    return Calibration(model=model, items=ItemParameters(**full), uninformative=uninformative,
                       converged=converged, iterations=iteration, max_parameter_change=change,
                       log_likelihood=log_likelihood, n_respondents=matrix.shape[0])


# --------------------------------------------------------------------------- ability


@dataclass(frozen=True)
class AbilityEstimates:
    """One ability estimate and its standard error per respondent (row of the responses)."""

    theta: np.ndarray
    standard_error: np.ndarray
    method: Literal["eap", "map"]


def ability_posterior(responses, items: ItemParameters, *, prior_mean: float = 0.0, prior_sd: float = 1.0,
                      quadrature_points: int = 61) -> tuple[np.ndarray, np.ndarray]:
    """Each respondent's posterior over ability: (nodes, weights) with one row of weights per respondent.

    The default prior N(0, 1) is the ability distribution calibration assumes, so it is the
    population the item parameters were estimated on. Items with NaN responses or parameters
    are skipped.
    """
    matrix = as_response_matrix(responses)
    _check_pool(matrix, items)
    nodes, log_weights = normal_quadrature(quadrature_points, prior_mean, prior_sd)
    joint = _node_log_likelihood(matrix, items, nodes) + log_weights
    return nodes, np.exp(joint - logsumexp(joint, axis=1, keepdims=True))


def estimate_ability_eap(responses, items: ItemParameters, *, prior_mean: float = 0.0,
                         prior_sd: float = 1.0, quadrature_points: int = 61) -> AbilityEstimates:
    """Expected a posteriori ability: posterior mean and SD over a quadrature grid.

    Always finite (even for all-correct responses) and the natural score of a configuration
    against a fixed calibration pool. Items with NaN responses or parameters are skipped.
    """
    nodes, posterior = ability_posterior(responses, items, prior_mean=prior_mean, prior_sd=prior_sd,
                                         quadrature_points=quadrature_points)
    mean = posterior @ nodes
    sd = np.sqrt(np.maximum(posterior @ nodes**2 - mean**2, 0.0))
    return AbilityEstimates(mean, sd, "eap")


def estimate_ability_map(responses, items: ItemParameters, *, prior_mean: float = 0.0,
                         prior_sd: float = 1.0, max_iterations: int = 100,
                         tolerance: float = 1e-8) -> AbilityEstimates:
    """Maximum a posteriori ability by Fisher scoring, with SE = 1/sqrt(information + 1/prior_sd^2).

    The SE uses expected (Fisher) information, which equals the observed information for
    1PL/2PL. Steps are capped at one logit so 3PL likelihoods cannot overshoot.
    """
    matrix = as_response_matrix(responses)
    _check_pool(matrix, items)
    usable = items.calibrated
    matrix, items = matrix[:, usable], items.take(np.flatnonzero(usable))
    seen = ~np.isnan(matrix)
    correct = np.where(seen, matrix, 0.0)
    a, c = items.discrimination, items.guessing
    prior_information = 1 / prior_sd**2
    theta = np.full(matrix.shape[0], float(prior_mean))
    for _ in range(max_iterations):
        p = np.clip(response_probability(theta, items), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
        slope = a * (p - c) / (p * (1 - c))  # d log-likelihood / d theta = slope * (x - p)
        gradient = np.sum(seen * slope * (correct - p), axis=1) - (theta - prior_mean) * prior_information
        information = np.sum(seen * item_information(theta, items), axis=1) + prior_information
        step = np.clip(gradient / information, -1.0, 1.0)
        theta = theta + step
        if np.max(np.abs(step)) < tolerance:
            break
    information = np.sum(seen * item_information(theta, items), axis=1) + prior_information
    return AbilityEstimates(theta, 1 / np.sqrt(information), "map")


# --------------------------------------------------------------------------- item fit


@dataclass(frozen=True)
class ItemFit:
    """Rasch-style mean-square fit per item (NaN where an item has no usable responses).

    Both have expectation 1 when the model holds. ``outfit`` (unweighted mean of squared
    standardized residuals) is sensitive to surprises far from an item's difficulty, e.g. a
    strong system failing an easy item; ``infit`` (information-weighted) to misfit near it.
    Values above about 1.3 mark items that measure something other than the common ability
    (or are mis-keyed).
    """

    infit: np.ndarray
    outfit: np.ndarray
    n_responses: np.ndarray


def item_fit(responses, items: ItemParameters, theta) -> ItemFit:
    """Infit and outfit mean squares of each item given respondents' abilities ``theta``."""
    matrix = as_response_matrix(responses)
    _check_pool(matrix, items)
    theta = np.asarray(theta, dtype=float).reshape(-1)
    if theta.shape[0] != matrix.shape[0]:
        raise AxError(f"theta has {theta.shape[0]} abilities but responses have {matrix.shape[0]} respondents")
    seen = ~np.isnan(matrix) & items.calibrated
    p = np.clip(response_probability(theta, items), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
    variance = p * (1 - p)
    squared_residual = np.where(seen, (np.nan_to_num(matrix) - p) ** 2, 0.0)
    n = seen.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        outfit = np.sum(np.where(seen, squared_residual / variance, 0.0), axis=0) / n
        infit = squared_residual.sum(axis=0) / np.sum(np.where(seen, variance, 0.0), axis=0)
    return ItemFit(np.where(n > 0, infit, np.nan), np.where(n > 0, outfit, np.nan), n)
