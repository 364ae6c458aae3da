"""Intervals, paired tests, Holm, and the LoRA x GEPA interaction analyses."""

from __future__ import annotations

import numpy as np
import pytest

from ax.errors import AxError
from ax.evals.stats import (
    FactorialResponses,
    ResponseRow,
    bootstrap_accuracy_interval,
    hierarchical_bootstrap_interaction,
    holm_adjust,
    interaction_contrast,
    interaction_power,
    mcnemar_exact,
    mixed_model_interaction,
    paired_bootstrap_difference,
    simulate_factorial_responses,
    wilson_interval,
)


def test_wilson_interval_matches_the_closed_form():
    interval = wilson_interval(8, 10)
    # Wilson (1927) for 8/10 at 95%: 0.4902 .. 0.9433
    assert (interval.estimate, round(interval.low, 4), round(interval.high, 4)) == (0.8, 0.4902, 0.9433)
    assert wilson_interval(0, 20).low == 0 and wilson_interval(0, 20).high > 0.1  # not degenerate at 0%
    with pytest.raises(AxError, match="successes=11, trials=10"):
        wilson_interval(11, 10)


def test_bootstrap_accuracy_interval_agrees_with_wilson_on_a_large_sample():
    correct = np.r_[np.ones(140), np.zeros(60)]
    boot, wilson = bootstrap_accuracy_interval(correct, n_bootstrap=4000), wilson_interval(140, 200)
    assert boot.estimate == 0.7
    assert boot.low == pytest.approx(wilson.low, abs=0.015) and boot.high == pytest.approx(wilson.high, abs=0.015)


def test_paired_bootstrap_uses_the_pairing():
    rng = np.random.default_rng(0)
    b = (rng.random(300) < 0.6).astype(float)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:15]] = 1  # a fixes 15 items b got wrong, and nothing else changes
    interval = paired_bootstrap_difference(a, b)
    assert interval.estimate == pytest.approx(0.05)
    assert interval.excludes(0)
    # unpaired intervals of the two accuracies overlap: pairing is what makes this detectable
    assert wilson_interval(int(a.sum()), 300).low < wilson_interval(int(b.sum()), 300).high
    with pytest.raises(AxError, match="correct_a has 300 items but correct_b has 299"):
        paired_bootstrap_difference(a, b[:-1])


def test_mcnemar_exact_known_value():
    # 1 item only a gets right, 9 only b gets right, 40 agree: p = 2 * P(X <= 1 | n=10, 1/2) = 22/1024
    a = np.r_[np.ones(1), np.zeros(9), np.ones(20), np.zeros(20)]
    b = np.r_[np.zeros(1), np.ones(9), np.ones(20), np.zeros(20)]
    result = mcnemar_exact(a, b)
    assert (result.only_a_correct, result.only_b_correct) == (1, 9)
    assert result.p_value == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(a, a).p_value == 1.0
    statsmodels = pytest.importorskip("statsmodels.stats.contingency_tables")
    assert result.p_value == pytest.approx(statsmodels.mcnemar([[20, 1], [9, 20]], exact=True).pvalue)


def test_holm_textbook_example():
    # Four tests at alpha 0.05: sorted 0.005*4, 0.01*3, 0.03*2, then max(0.06, 0.04*1)
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert (adjusted <= 0.05).tolist() == [True, False, False, True]
    np.testing.assert_allclose(holm_adjust([0.9, 0.3]), [0.9, 0.6])  # monotone: never below an earlier step
    assert holm_adjust([0.9, 0.8]).tolist() == [1.0, 1.0]  # capped at 1
    with pytest.raises(AxError, match="probabilities in"):
        holm_adjust([0.1, 1.5])


def constructed_table():
    """2 runs per cell, 10 items; accuracies baseline 50%, lora 60%, gepa 70%, both 90%."""
    rows = []
    for (lora, gepa), n_correct in {(False, False): 5, (True, False): 6, (False, True): 7, (True, True): 9}.items():
        for run in range(2):
            run_id = f"{int(lora)}{int(gepa)}-seed{run}"
            rows += [ResponseRow(run_id, lora, gepa, f"q{item}", item < n_correct) for item in range(10)]
    return FactorialResponses.from_rows(rows)


def test_interaction_contrast_on_a_constructed_table():
    contrast = interaction_contrast(constructed_table())
    assert contrast.cell_accuracy == {"baseline": 0.5, "lora": 0.6, "gepa": 0.7, "lora+gepa": 0.9}
    assert contrast.accuracy == pytest.approx(0.9 - 0.6 - 0.7 + 0.5)

    def logit(k, n=20):
        return np.log((k + 0.5) / (n - k + 0.5))
    assert contrast.logit == pytest.approx(logit(18) - logit(12) - logit(14) + logit(10))
    assert contrast.runs_per_cell == {"baseline": 2, "lora": 2, "gepa": 2, "lora+gepa": 2}


def test_table_validation_names_the_problem():
    good = ResponseRow("r1", True, False, "q1", True)
    with pytest.raises(AxError, match="run 'r1' appears under more than one lora/gepa cell"):
        FactorialResponses.from_rows([good, ResponseRow("r1", True, True, "q2", True)])
    with pytest.raises(AxError, match="run 'r1' answers item 'q1' more than once"):
        FactorialResponses.from_rows([good, good])
    with pytest.raises(AxError, match=r"correct\[0\] = 2"):
        FactorialResponses.from_rows([ResponseRow("r1", True, False, "q1", 2)])
    with pytest.raises(AxError, match="no runs in the 'baseline' cell"):
        interaction_contrast(FactorialResponses.from_rows([good]))


def test_hierarchical_bootstrap_covers_a_null_interaction_despite_run_noise():
    covered, widths = [], []
    for seed in range(40):
        table = simulate_factorial_responses(n_items=80, runs_per_cell=4, interaction_logit=0.0,
                                             baseline_logit=0.5, run_sd=0.4, seed=seed)
        interval = hierarchical_bootstrap_interaction(table, n_bootstrap=300, seed=seed)
        assert interval.captures_run_variance
        covered.append(not interval.logit.excludes(0.0))
        widths.append(interval.logit.high - interval.logit.low)
    assert np.mean(covered) >= 0.85
    # run noise must widen the interval: the same design without it is clearly narrower
    quiet = [hierarchical_bootstrap_interaction(simulate_factorial_responses(
        n_items=80, runs_per_cell=4, interaction_logit=0.0, baseline_logit=0.5, run_sd=0.0, seed=seed),
        n_bootstrap=300, seed=seed) for seed in range(10)]
    assert np.mean(widths) > 1.3 * np.mean([q.logit.high - q.logit.low for q in quiet])


def test_single_run_per_cell_is_marked_as_blind_to_run_variance():
    table = simulate_factorial_responses(n_items=50, runs_per_cell=1, interaction_logit=0.0, seed=0)
    assert not hierarchical_bootstrap_interaction(table, n_bootstrap=100).captures_run_variance
    assert not mixed_model_interaction(table).captures_run_variance


@pytest.mark.parametrize("planted", [1.5, -1.5])
def test_mixed_model_recovers_a_planted_interaction(planted):
    table = simulate_factorial_responses(n_items=100, runs_per_cell=4, interaction_logit=planted,
                                         item_sd=1.5, run_sd=0.2, seed=11)
    fit = mixed_model_interaction(table)
    assert np.sign(fit.estimate) == np.sign(planted)
    assert abs(fit.estimate - planted) < 2.5 * fit.posterior_sd
    assert fit.p_value < 0.01
    assert 0.1 < fit.posterior_sd < 0.6
    assert fit.item_sd == pytest.approx(1.5, abs=0.4)
    assert fit.captures_run_variance


def test_power_rises_with_effect_size_and_stays_near_alpha_under_the_null():
    null = interaction_power(0.0, n_items=100, runs_per_cell=4, n_simulations=40, n_bootstrap=200, seed=1)
    strong = interaction_power(1.5, n_items=100, runs_per_cell=4, n_simulations=40, n_bootstrap=200, seed=1)
    assert null.power <= 0.15
    assert strong.power >= 0.8
    assert strong.standard_error == pytest.approx(np.sqrt(strong.power * (1 - strong.power) / 40))
