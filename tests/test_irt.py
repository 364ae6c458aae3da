"""IRT calibration, scoring, information and item fit on simulated data with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from ax.errors import AxError
from ax.evals.irt import (
    CalibrationPriors,
    ItemParameters,
    calibrate,
    estimate_ability_eap,
    estimate_ability_map,
    item_fit,
    item_information,
    predicted_accuracy,
    response_probability,
)
from ax.evals.irt import test_information as pool_information  # renamed so pytest does not collect it


def simulate(n_respondents, n_items, *, seed, a_sd=0.3, guessing=0.0, discrimination=None):
    rng = np.random.default_rng(seed)
    a = np.full(n_items, discrimination) if discrimination else rng.lognormal(0.0, a_sd, n_items)
    truth = ItemParameters(rng.normal(0, 1, n_items), a, np.full(n_items, guessing))
    theta = rng.normal(0, 1, n_respondents)
    responses = (rng.random((n_respondents, n_items)) < response_probability(theta, truth)).astype(float)
    return truth, theta, responses


def r(x, y):
    return float(np.corrcoef(x, y)[0, 1])


def rmse(x, y):
    return float(np.sqrt(np.mean((np.asarray(x) - np.asarray(y)) ** 2)))


@pytest.fixture(scope="module")
def twopl():
    truth, theta, responses = simulate(100, 300, seed=0)
    return truth, theta, responses, calibrate(responses, "2pl")


def test_2pl_recovers_items_and_abilities_at_realistic_size(twopl):
    truth, theta, responses, cal = twopl
    assert cal.converged and cal.uninformative == ()
    est = cal.items
    assert r(truth.difficulty, est.difficulty) > 0.92
    assert rmse(truth.difficulty, est.difficulty) < 0.4
    assert r(truth.discrimination, est.discrimination) > 0.6
    assert rmse(np.log(truth.discrimination), np.log(est.discrimination)) < 0.3
    assert np.all(est.discrimination > 0) and np.all(est.guessing == 0)
    eap = estimate_ability_eap(responses, est)
    assert r(theta, eap.theta) > 0.97
    assert rmse(theta, eap.theta) < 0.3


def test_standard_errors_are_calibrated(twopl):
    truth, theta, responses, _ = twopl
    few = responses[:, :40]  # fewer items so the SEs are sizeable
    pool = truth.take(range(40))
    for estimate in (estimate_ability_eap(few, pool), estimate_ability_map(few, pool)):
        coverage = np.mean(np.abs(estimate.theta - theta) < 1.96 * estimate.standard_error)
        assert 0.85 < coverage <= 1.0, estimate.method
        assert 0.2 < estimate.standard_error.mean() < 0.5


def test_map_standard_error_is_inverse_root_of_test_information_plus_prior(twopl):
    truth, _, responses, _ = twopl
    estimate = estimate_ability_map(responses[:5], truth)
    information = np.array([pool_information(t, truth)[0] for t in estimate.theta])
    np.testing.assert_allclose(estimate.standard_error, 1 / np.sqrt(information + 1), rtol=1e-10)
    # and the MAP is a stationary point of the log posterior
    eps = 1e-5
    for theta, row in zip(estimate.theta, responses[:5]):
        def log_post(t):
            p = response_probability(t, truth)[0]
            return np.sum(row * np.log(p) + (1 - row) * np.log1p(-p)) - t**2 / 2
        assert abs(log_post(theta + eps) - log_post(theta - eps)) / (2 * eps) < 1e-4


def test_1pl_matches_girth_rasch_and_ranks_like_raw_score():
    girth = pytest.importorskip("girth")
    truth, theta, responses = simulate(100, 300, seed=1, discrimination=1.0)
    cal = calibrate(responses, "1pl")
    assert cal.converged
    assert np.ptp(cal.items.discrimination) == 0  # one shared discrimination
    # the shared discrimination is the spread of this sample's abilities on the N(0, 1) scale
    assert cal.items.discrimination[0] / np.std(theta) == pytest.approx(1.0, abs=0.15)
    assert r(truth.difficulty, cal.items.difficulty) > 0.96
    theirs = girth.rasch_mml(responses.T.astype(int))["Difficulty"]  # girth: items x participants
    assert r(theirs, cal.items.difficulty) > 0.99
    # Under Rasch the raw score is sufficient: ability is a non-decreasing function of it.
    eap = estimate_ability_eap(responses, cal.items).theta
    order = np.argsort(responses.sum(axis=1), kind="stable")
    score, ability = responses.sum(axis=1)[order], eap[order]
    assert np.all(np.diff(ability)[np.diff(score) > 0] > 0)
    np.testing.assert_allclose(np.diff(ability)[np.diff(score) == 0], 0, atol=1e-9)


def test_2pl_agrees_with_girth_twopl_mml():
    girth = pytest.importorskip("girth")
    _, _, responses = simulate(300, 60, seed=2)
    ours = calibrate(responses, "2pl").items
    theirs = girth.twopl_mml(responses.T.astype(int))
    assert r(theirs["Difficulty"], ours.difficulty) > 0.99
    assert r(theirs["Discrimination"], ours.discrimination) > 0.99


def test_3pl_recovers_guessing_on_average():
    truth, _, responses = simulate(400, 80, seed=3, guessing=0.2)
    cal = calibrate(responses, "3pl")
    assert cal.converged
    assert abs(np.mean(cal.items.guessing) - 0.2) < 0.05
    assert np.all((cal.items.guessing > 0) & (cal.items.guessing < 0.5))
    assert r(truth.difficulty, cal.items.difficulty) > 0.9


def test_missing_responses_are_ignored_not_scored_wrong():
    truth, theta, responses = simulate(150, 120, seed=4)
    holey = responses.copy()
    holey[np.random.default_rng(5).random(holey.shape) < 0.3] = np.nan
    cal = calibrate(holey, "2pl")
    assert r(truth.difficulty, cal.items.difficulty) > 0.9
    # scoring wrong answers as missing must not move difficulties up (as scoring them 0 would)
    assert abs(np.mean(cal.items.difficulty - truth.difficulty)) < 0.2


def test_uninformative_items_are_excluded_and_reported():
    _, _, responses = simulate(60, 30, seed=6)
    padded = np.column_stack([responses, np.ones(60), np.zeros(60), np.full(60, np.nan)])
    padded[:10, -1] = 1  # answered by some, all correct
    cal = calibrate(padded, "2pl")
    assert [(item.index, item.reason) for item in cal.uninformative] == [
        (30, "all correct"), (31, "all wrong"), (32, "all correct")]
    assert np.all(np.isnan(cal.items.difficulty[30:])) and np.all(np.isfinite(cal.items.difficulty[:30]))
    assert cal.items.calibrated.sum() == 30
    # scoring treats uncalibrated items as not administered
    full = estimate_ability_eap(padded, cal.items).theta
    trimmed = estimate_ability_eap(responses, cal.items.take(range(30))).theta
    np.testing.assert_allclose(full, trimmed)
    assert item_information(0.0, cal.items)[0, 30:].tolist() == [0, 0, 0]


def test_tiny_samples_stay_finite_thanks_to_priors():
    _, _, responses = simulate(4, 100, seed=7)
    cal = calibrate(responses, "2pl")
    items = cal.items
    assert np.all(np.isfinite(items.difficulty[items.calibrated]))
    assert np.all(np.abs(items.difficulty[items.calibrated]) < 6)
    assert len(cal.uninformative) > 0
    with pytest.raises(AxError, match="none of the 3 items"):
        calibrate(np.ones((5, 3)))


def test_all_correct_respondent_gets_a_finite_score(twopl):
    truth = twopl[0]
    perfect = np.ones((1, truth.n_items))
    for estimate in (estimate_ability_eap(perfect, truth), estimate_ability_map(perfect, truth)):
        assert np.isfinite(estimate.theta[0]) and estimate.theta[0] > 2


def test_information_matches_its_definition_for_3pl():
    items = ItemParameters(np.array([-1.0, 0.5]), np.array([0.8, 2.0]), np.array([0.0, 0.25]))
    theta, eps = np.linspace(-3, 3, 13), 1e-6
    p = response_probability(theta, items)
    slope = (response_probability(theta + eps, items) - response_probability(theta - eps, items)) / (2 * eps)
    np.testing.assert_allclose(item_information(theta, items), slope**2 / (p * (1 - p)), rtol=1e-6)
    np.testing.assert_allclose(pool_information(theta, items), item_information(theta, items).sum(axis=1))
    # a 2PL item is most informative at its difficulty, with information a^2 / 4
    assert item_information(-1.0, items)[0, 0] == pytest.approx(0.8**2 / 4)
    assert predicted_accuracy(0.5, items.take([1])) == pytest.approx(0.25 + 0.75 * 0.5)


def test_item_fit_flags_a_miskeyed_item():
    truth, theta, responses = simulate(300, 40, seed=8)
    responses[:, 7] = 1 - responses[:, 7]  # the key of item 7 is reversed
    fit = item_fit(responses, truth, theta)
    others = np.delete(np.arange(40), 7)
    assert 0.85 < np.median(fit.outfit[others]) < 1.15 and 0.85 < np.median(fit.infit[others]) < 1.15
    assert fit.outfit[7] > 2 and fit.infit[7] > 1.5
    assert np.argmax(fit.outfit) == 7
    assert fit.n_responses.tolist() == [300] * 40


@pytest.mark.parametrize("bad, message", [
    (np.array([[0, 1], [2, 1]]), r"responses\[1, 0\] = 2: responses must be 0, 1 or NaN"),
    (np.zeros((2, 2, 2)), r"2-D respondents x items matrix, got shape \(2, 2, 2\)"),
    ([["a", "b"]], "numeric 0/1/NaN"),
])
def test_bad_responses_are_refused_with_the_value(bad, message):
    with pytest.raises(AxError, match=message):
        calibrate(bad)


def test_mismatched_pool_and_bad_parameters_are_refused(twopl):
    truth = twopl[0]
    with pytest.raises(AxError, match="responses have 10 item columns but the item parameters describe 300"):
        estimate_ability_eap(np.ones((2, 10)), truth)
    with pytest.raises(AxError, match=r"discrimination\[1\] = -1: must be positive"):
        ItemParameters(np.zeros(2), np.array([1.0, -1.0]), np.zeros(2))
    with pytest.raises(AxError, match="model = '4pl'"):
        calibrate(np.eye(3), "4pl")
    with pytest.raises(AxError, match="difficulty_sd = 0"):
        CalibrationPriors(difficulty_sd=0)
