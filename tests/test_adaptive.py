"""Adaptive testing on a calibrated pool: few items, small error against the full evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from ax.errors import AxError
from ax.evals.adaptive import (
    TARGET_STANDARD_ERROR,
    cross_validated_model,
    forecast,
    held_out_log_likelihood,
    item_budget,
    replay_adaptive_test,
    replay_adaptive_tests,
    run_adaptive_test,
)
from ax.evals.irt import ItemParameters, calibrate, item_information, response_probability


def simulate(n_items, n_respondents, rng):
    truth = ItemParameters(rng.normal(0, 1, n_items), rng.lognormal(0, 0.3, n_items), np.zeros(n_items))
    theta = rng.normal(0, 1, n_respondents)
    return truth, theta, (rng.random((n_respondents, n_items)) < response_probability(theta, truth)).astype(float)


@pytest.fixture(scope="module")
def pool():
    """A 2PL pool of 120 items calibrated on 100 simulated respondents, its true parameters, and 80 new respondents."""
    truth, theta, responses = simulate(120, 180, np.random.default_rng(0))
    return calibrate(responses[:100]).items, truth, theta[100:], responses[100:]


def test_forecast_is_the_posterior_mean_and_sd_of_the_full_pool_accuracy():
    items = ItemParameters(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]), np.array([1.5, 1.0, 0.7, 1.2, 2.0]),
                           np.array([0.0, 0.2, 0.0, 0.0, 0.1]))
    answers = np.array([1, np.nan, 0, np.nan, np.nan])
    p = lambda t: response_probability(t, items)[0]  # noqa: E731
    density = lambda t: norm.pdf(t) * p(t)[0] * (1 - p(t)[2])  # noqa: E731
    z = quad(density, -10, 10)[0]
    moment = lambda f: quad(lambda t: f(t) * density(t), -10, 10)[0] / z  # noqa: E731
    unanswered = [1, 3, 4]
    expected = moment(lambda t: p(t)[unanswered].sum())
    variance = moment(lambda t: (p(t) * (1 - p(t)))[unanswered].sum() + p(t)[unanswered].sum() ** 2) - expected**2
    result = forecast(answers, items)
    assert result.accuracy == pytest.approx((1 + expected) / 5, abs=1e-4)
    assert result.accuracy_standard_error == pytest.approx(np.sqrt(variance) / 5, abs=1e-4)
    assert result.theta == pytest.approx(moment(lambda t: t), abs=1e-3)


def test_answered_items_count_as_answered_so_a_full_pool_forecast_is_exact(pool):
    items, _, _, responses = pool
    full = forecast(responses[0], items)
    assert full.accuracy == pytest.approx(responses[0].mean()) and full.accuracy_standard_error == 0
    # an item the model thinks easy, answered wrong, costs the forecast a whole item, not its model expectation
    easy = int(np.argmin(items.difficulty))
    answers = np.full(items.n_items, np.nan)
    right, wrong = answers.copy(), answers.copy()
    right[easy], wrong[easy] = 1, 0
    assert forecast(right, items).accuracy - forecast(wrong, items).accuracy > 1 / items.n_items


def test_forecast_standard_error_matches_the_actual_error_against_the_full_evaluation(pool):
    _, truth, _, responses = pool
    replays = replay_adaptive_tests(responses, truth, max_items=20)
    errors = np.array([replay.accuracy_error for replay in replays])
    claimed = np.sqrt(np.mean([replay.test.forecast.accuracy_standard_error**2 for replay in replays]))
    assert 0.75 < np.sqrt(np.mean(errors**2)) / claimed < 1.3
    assert abs(errors.mean()) < 0.3 * claimed  # unbiased


def test_adaptive_forecast_beats_random_items_and_improves_with_the_budget(pool):
    items, _, theta, responses = pool
    rng = np.random.default_rng(1)
    by_budget = {}
    for budget in (6, 12, item_budget(items.n_items)):
        replays = replay_adaptive_tests(responses, items, max_items=budget, target_standard_error=1e-9)
        assert all(replay.items_used == budget for replay in replays)
        by_budget[budget] = np.mean(np.abs([replay.accuracy_error for replay in replays]))
        random = np.mean([abs(row[rng.choice(items.n_items, budget, replace=False)].mean() - row.mean())
                          for row in responses])
        assert by_budget[budget] < 0.8 * random
    assert list(by_budget.values()) == sorted(by_budget.values(), reverse=True)
    assert by_budget[30] < 0.05
    quarter = replay_adaptive_tests(responses, items)
    assert np.corrcoef(theta, [replay.test.forecast.theta for replay in quarter])[0, 1] > 0.9
    assert np.mean(np.abs([replay.test.forecast.theta - replay.full_theta for replay in quarter])) < 0.3


def test_items_are_chosen_by_information_at_the_current_ability_and_answers_only_asked_for_them(pool):
    items, _, _, responses = pool
    asked = []

    def respond(item):
        asked.append(item)
        return responses[0, item]

    test = run_adaptive_test(respond, items, max_items=10, target_standard_error=1e-9)
    assert tuple(asked) == test.items and len(set(asked)) == 10
    assert test.stop_reason == "max_items"
    assert test.items[0] == int(np.argmax(item_information(0.0, items)[0]))  # most informative at the prior mean
    second = np.argsort(item_information(test.forecasts[0].theta, items)[0])[::-1]
    assert test.items[1] == next(j for j in second if j != test.items[0])
    assert test.forecasts[-1].theta_standard_error < test.forecasts[0].theta_standard_error


def test_stops_at_the_accuracy_standard_error_the_budget_or_the_end_of_the_pool(pool):
    items, _, _, responses = pool
    default = run_adaptive_test(lambda item: responses[1, item], items)
    assert item_budget(items.n_items) == 30 and len(default.items) <= 30
    assert default.stop_reason == "max_items" and default.forecast.accuracy_standard_error > TARGET_STANDARD_ERROR
    loose = run_adaptive_test(lambda item: responses[1, item], items, target_standard_error=0.06)
    assert loose.stop_reason == "standard_error"
    assert loose.forecast.accuracy_standard_error <= 0.06 < loose.forecasts[-2].accuracy_standard_error
    small = run_adaptive_test(lambda item: responses[1, item], items, available=[3, 4, 5], max_items=10)
    assert small.stop_reason == "pool_exhausted" and sorted(small.items) == [3, 4, 5]
    assert small.forecast.accuracy == pytest.approx(responses[1, [3, 4, 5]].mean())


def test_bad_answers_and_settings_are_refused(pool):
    items, _, _, responses = pool
    with pytest.raises(AxError, match=r"respond\(\d+\) returned 0.5"):
        run_adaptive_test(lambda item: 0.5, items)
    with pytest.raises(AxError, match="max_items = 0"):
        run_adaptive_test(lambda item: 1, items, max_items=0)
    with pytest.raises(AxError, match="target_standard_error = 0"):
        run_adaptive_test(lambda item: 1, items, target_standard_error=0)
    with pytest.raises(AxError, match="full_responses has 10 items but the item parameters describe 120"):
        replay_adaptive_test(responses[0, :10], items)
    with pytest.raises(AxError, match="answers must be one respondent's vector"):
        forecast(responses[:2], items)
    with pytest.raises(AxError, match="no calibrated item"):
        forecast([1, np.nan], ItemParameters(np.full(2, np.nan), np.ones(2), np.zeros(2)))


def test_batch_replays_are_the_single_replays(pool):
    items, _, _, responses = pool
    rng = np.random.default_rng(5)
    rows = responses[:12].copy()
    rows[rng.random(rows.shape) < 0.2] = np.nan  # runs that skipped items
    rows[3, 40:] = np.nan  # a short run: its pool runs out
    items = ItemParameters(np.r_[items.difficulty[:-2], np.nan, np.nan], items.discrimination, items.guessing)
    reasons = []
    for settings in ({}, {"max_items": 25, "target_standard_error": 0.045},
                     {"max_items": 500, "target_standard_error": 1e-9}):
        batch = replay_adaptive_tests(rows, items, **settings)
        single = [replay_adaptive_test(row, items, **settings) for row in rows]
        for b, s in zip(batch, single):
            assert (b.test.items, b.test.responses, b.test.stop_reason) == (s.test.items, s.test.responses,
                                                                            s.test.stop_reason)
            assert b.items_used == s.items_used and b.available_items == s.available_items
            assert np.allclose([list(vars(f).values()) for f in b.test.forecasts],
                               [list(vars(f).values()) for f in s.test.forecasts], atol=1e-12)
            assert (b.observed_accuracy, b.full_theta) == pytest.approx((s.observed_accuracy, s.full_theta), abs=1e-12)
        reasons.append({b.test.stop_reason for b in batch})
    assert reasons == [{"max_items"}, {"max_items", "standard_error"}, {"pool_exhausted"}]
    with pytest.raises(AxError, match="row 1 has no answered item"):
        replay_adaptive_tests(np.vstack([rows[0], np.full(items.n_items, np.nan)]), items)


def test_held_out_log_likelihood_is_the_marginal_likelihood():
    items = ItemParameters(np.array([-1.0, 0.5, np.nan]), np.array([1.5, 0.7, 1.0]), np.zeros(3))
    answers = np.array([[1, 0, 1], [np.nan, 1, 0]])
    p = lambda t: response_probability(t, items)[0]  # noqa: E731
    marginal = [quad(lambda t: norm.pdf(t) * p(t)[0] * (1 - p(t)[1]), -10, 10)[0],
                quad(lambda t: norm.pdf(t) * p(t)[1], -10, 10)[0]]
    assert held_out_log_likelihood(answers, items) == pytest.approx(np.log(marginal).sum(), abs=1e-3)


def test_the_model_is_the_one_that_predicts_left_out_respondents_better():
    rng = np.random.default_rng(3)

    def respondents(log_sd, n_items=40, n=60):
        truth = ItemParameters(rng.normal(0, 1, n_items), rng.lognormal(0, log_sd, n_items), np.zeros(n_items))
        return simulate_from(truth, n)

    def simulate_from(truth, n):
        theta = rng.normal(0, 1, n)
        return (rng.random((n, truth.n_items)) < response_probability(theta, truth)).astype(float)

    assert cross_validated_model(respondents(0.8)) == "2pl"  # discriminations from about 0.2 to 5
    assert cross_validated_model(respondents(0.0)) == "1pl"  # one discrimination: the 2PL only adds noise
    assert cross_validated_model(respondents(0.8, n=9)) == "1pl"  # too few to leave any out
    with pytest.raises(AxError, match="folds = 1"):
        cross_validated_model(respondents(0.0), folds=1)


def test_a_forecast_over_calibrated_items_extends_to_the_settled_ones():
    from ax.evals.adaptive import Forecast, over_every_item, pool_sampling_floor, sampling_floor

    state = Forecast(theta=0.1, theta_standard_error=0.3, accuracy=0.5, accuracy_standard_error=0.04,
                     unasked_standard_error=0.03)
    whole = over_every_item(state, calibrated=60, settled_correct=10, total=80)  # 20 settled items, 10 right
    assert whole.accuracy == pytest.approx((30 + 10) / 80) and whole.accuracy_standard_error == pytest.approx(0.03)
    assert whole.unasked_standard_error == pytest.approx(0.0225) and whole.theta == state.theta
    assert sampling_floor(0.01) == pytest.approx(0.00798, abs=1e-5)
    # the bench's floor at 72 items, a quarter asked, mean p(1-p) 0.17: about 3.4 points
    assert pool_sampling_floor(72, spread=0.17) == pytest.approx(0.034, abs=0.001)


def test_on_a_simulated_600_item_pool_the_goal_is_met_with_a_quarter_of_the_items():
    """The issue's goal where it can be met: calibrated on 100 respondents, tested on 200 new ones with the
    whole quarter (the default SE stop ends earlier, near the goal; bench/adaptive_eval.py has both)."""
    from ax.evals.adaptive import GOAL_ERROR, cross_validated_model

    rng = np.random.default_rng(7)
    truth = ItemParameters(rng.normal(0, 1, 600), rng.lognormal(0.0, 0.3, 600), np.zeros(600))
    theta = rng.normal(0, 1, 300)
    responses = (rng.random((300, 600)) < response_probability(theta, truth)).astype(float)
    items = calibrate(responses[:100], cross_validated_model(responses[:100])).items
    replays = replay_adaptive_tests(responses[100:], items, target_standard_error=1e-9)
    assert max(r.items_used for r in replays) <= 150
    error = np.mean([abs(r.accuracy_error) for r in replays])
    assert error <= GOAL_ERROR, error
