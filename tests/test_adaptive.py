"""Adaptive testing on a calibrated pool: few items, small error against the full evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from ax.errors import AxError
from ax.evals.adaptive import replay_adaptive_test, run_adaptive_test
from ax.evals.irt import ItemParameters, calibrate, item_information, response_probability


@pytest.fixture(scope="module")
def pool():
    """A 2PL pool of 300 items calibrated on 100 simulated respondents, and 30 new respondents."""
    rng = np.random.default_rng(0)
    truth = ItemParameters(rng.normal(0, 1, 300), rng.lognormal(0, 0.3, 300), np.zeros(300))
    theta = rng.normal(0, 1, 130)
    responses = (rng.random((130, 300)) < response_probability(theta, truth)).astype(float)
    return calibrate(responses[:100]).items, theta[100:], responses[100:]


def test_adaptive_test_matches_full_length_accuracy_with_a_fraction_of_items(pool):
    items, theta, responses = pool
    replays = [replay_adaptive_test(row, items, target_standard_error=0.25, max_items=60) for row in responses]
    used = np.array([replay.items_used for replay in replays])
    accuracy_error = np.abs([replay.accuracy_error for replay in replays])
    assert used.mean() < 0.12 * items.n_items
    assert accuracy_error.mean() < 0.05
    assert np.mean(np.abs([replay.test.theta - replay.full_theta for replay in replays])) < 0.25
    assert np.corrcoef(theta, [replay.test.theta for replay in replays])[0, 1] > 0.9
    # a looser target saves items and pays in accuracy
    loose = [replay_adaptive_test(row, items, target_standard_error=0.4, max_items=60) for row in responses]
    assert np.mean([replay.items_used for replay in loose]) < 0.5 * used.mean()
    assert np.mean(np.abs([replay.accuracy_error for replay in loose])) > 1.3 * accuracy_error.mean()


def test_items_are_chosen_by_information_and_answers_only_asked_for_them(pool):
    items, _, responses = pool
    asked = []

    def respond(item):
        asked.append(item)
        return responses[0, item]

    test = run_adaptive_test(respond, items, max_items=10, target_standard_error=0.01)
    assert tuple(asked) == test.items and len(set(asked)) == 10
    assert test.stop_reason == "max_items"
    assert test.items[0] == int(np.argmax(item_information(0.0, items)[0]))  # most informative at the prior mean
    assert test.standard_error_path[-1] < test.standard_error_path[0]


def test_stops_at_the_target_standard_error_or_when_the_pool_runs_out(pool):
    items, _, responses = pool
    test = run_adaptive_test(lambda item: responses[1, item], items, target_standard_error=0.4, max_items=300)
    assert test.stop_reason == "standard_error"
    assert test.standard_error <= 0.4 < test.standard_error_path[-2]
    small = run_adaptive_test(lambda item: responses[1, item], items, available=[3, 4, 5], target_standard_error=0.01)
    assert small.stop_reason == "pool_exhausted" and sorted(small.items) == [3, 4, 5]


def test_bad_answers_and_settings_are_refused(pool):
    items, _, responses = pool
    with pytest.raises(AxError, match=r"respond\(\d+\) returned 0.5"):
        run_adaptive_test(lambda item: 0.5, items)
    with pytest.raises(AxError, match="max_items = 0"):
        run_adaptive_test(lambda item: 1, items, max_items=0)
    with pytest.raises(AxError, match="full_responses has 10 items but the item parameters describe 300"):
        replay_adaptive_test(responses[0, :10], items)
