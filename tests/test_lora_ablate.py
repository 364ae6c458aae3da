"""The sweep machinery with fake train/eval callables: configs per run, intervals, resuming a sweep."""

from __future__ import annotations

import json

import pytest

from ax.adapters.config import LoraTrainingConfig
from ax.errors import AxError
from ax.experiments.ablate import (
    confidence_interval, rank_settings, rank_sweep_alpha_ratio, run_sweep, sweep_settings, target_module_settings,
    weight_decay_settings,
)


def fake_train(config: LoraTrainingConfig) -> LoraTrainingConfig:
    return config  # "the trained adapter" is its config; fake_score reads it


def fake_score(config: LoraTrainingConfig) -> float:
    """Score falls with weight decay, plus a seed-dependent wobble."""
    return 0.8 - 5 * config.weight_decay + 0.01 * (config.seed % 3 - 1)


def test_weight_decay_sweep_gives_each_setting_its_config_and_an_interval():
    seen = []
    report = run_sweep(LoraTrainingConfig(r=8), weight_decay_settings(), seeds=[0, 1, 2],
                       train_fn=lambda c: seen.append((c.weight_decay, c.seed, c.r)) or fake_train(c), eval_fn=fake_score)
    assert sorted(seen) == sorted((wd, s, 8) for wd in (1e-2, 1e-3, 1e-4, 1e-5, 0.0) for s in (0, 1, 2))
    assert [s.setting for s in report.summaries] == [
        "weight_decay=0.01", "weight_decay=0.001", "weight_decay=0.0001", "weight_decay=1e-05", "weight_decay=0"]
    first = report.summaries[0]
    assert first.n == 3 and first.mean == pytest.approx(0.75)
    # scores 0.74, 0.75, 0.76: std 0.01, t(0.975, 2) = 4.303
    assert first.ci_high - first.mean == pytest.approx(4.303 * 0.01 / 3 ** 0.5, rel=1e-3)
    assert "weight_decay=0.01" in report.table()


def test_rank_sweep_keeps_the_lora_scale():
    """rsLoRA's alpha/sqrt(r) is rank-stable with alpha fixed; plain LoRA's alpha/r needs alpha to grow with r."""
    assert rank_sweep_alpha_ratio(LoraTrainingConfig(use_rslora=True)) is None
    plain = LoraTrainingConfig(use_rslora=False, r=16, lora_alpha=32)
    assert rank_sweep_alpha_ratio(plain) == 2.0
    by_rank = {s.overrides["r"]: s.overrides for s in sweep_settings("rank", "4,64", plain)}
    assert [o["lora_alpha"] / r for r, o in by_rank.items()] == [2.0, 2.0]
    assert all("lora_alpha" not in s.overrides for s in sweep_settings("rank", None, LoraTrainingConfig()))


def test_rank_and_target_settings():
    assert [s.overrides for s in rank_settings([4, 64], 2.0)] == [{"r": 4, "lora_alpha": 8.0}, {"r": 64, "lora_alpha": 128.0}]
    assert rank_settings([4])[0].overrides == {"r": 4}
    targets = {s.name: s.overrides["target_modules"] for s in target_module_settings()}
    assert targets["targets=attention"] == ["q_proj", "k_proj", "v_proj", "o_proj"] and targets["targets=all"] == "auto"
    report = run_sweep(LoraTrainingConfig(), target_module_settings(), seeds=[0], train_fn=fake_train,
                       eval_fn=lambda c: len(c.target_modules))
    assert [s.mean for s in report.summaries] == [4, 3, 4]  # "auto" has 4 letters: the config arrived unchanged


def test_a_sweep_resumes_from_its_results_file(tmp_path):
    path = tmp_path / "sweep.json"
    calls = []

    def flaky_train(config):
        calls.append((config.weight_decay, config.seed))
        if len(calls) == 3:
            raise RuntimeError("node lost")
        return config

    with pytest.raises(RuntimeError):
        run_sweep(LoraTrainingConfig(), weight_decay_settings([1e-2, 0.0]), [0, 1], train_fn=flaky_train,
                  eval_fn=fake_score, results_path=path)
    assert len(json.loads(path.read_text())) == 2
    report = run_sweep(LoraTrainingConfig(), weight_decay_settings([1e-2, 0.0]), [0, 1], train_fn=flaky_train,
                       eval_fn=fake_score, results_path=path)
    # the two saved runs are not redone; the failed one is retried
    assert calls == [(0.01, 0), (0.01, 1), (0.0, 0), (0.0, 0), (0.0, 1)]
    assert [s.n for s in report.summaries] == [2, 2]


def test_bad_input_is_reported():
    with pytest.raises(AxError, match="distinct names"):
        run_sweep(LoraTrainingConfig(), weight_decay_settings([0.0, 0.0]), [0], train_fn=fake_train, eval_fn=fake_score)
    with pytest.raises(AxError, match="r = 0"):
        run_sweep(LoraTrainingConfig(), rank_settings([0]), [0], train_fn=fake_train, eval_fn=fake_score)
    assert confidence_interval([0.5]) == (0.5, 0.0, 0.5, 0.5)
