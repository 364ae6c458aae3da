"""Budget arithmetic, stall verdicts and strategy names: the parts of a run decided before or after the LM calls."""

from __future__ import annotations

import pytest

from ax.errors import AxError
from ax.optimizers.budget import plan_budget, resolve_budget
from ax.optimizers.configurations import config_strategies
from ax.optimizers.presets import get_preset
from ax.optimizers.stall import IterationRecord, stall_report, streak_warning
from ax.optimizers.strategies import parse_strategy


def test_budget_plan_counts_proposals_and_evaluations():
    plan = plan_budget(40, trainset_size=24, valset_size=8, minibatch_size=3)
    # 32 calls after the seed evaluation; 6 per rejected proposal, 14 per accepted one.
    assert (plan.seed_eval_calls, plan.proposals_max, plan.proposals_min, plan.full_val_evals_max) == (8, 6, 3, 4)
    assert plan.overshoot_max == 13 and plan.warnings == []
    assert "proposals: 3 (if every one is accepted) to 6 (if none is)" in plan.describe()


def test_budget_plan_warns_when_the_budget_buys_nothing():
    assert plan_budget(8, trainset_size=24, valset_size=8).proposals_max == 0
    assert "no proposal will be made" in plan_budget(8, trainset_size=24, valset_size=8).warnings[0]
    assert plan_budget(9, trainset_size=24, valset_size=8).proposals_max == 1  # GEPA starts an iteration below budget
    assert plan_budget(20, trainset_size=2, valset_size=4).minibatch_size == 2
    with pytest.raises(AxError, match="at least one train and one val"):
        plan_budget(20, trainset_size=0, valset_size=4)


def test_budget_presets_follow_dspy_auto_budgets():
    import dspy

    expected = dspy.GEPA.auto_budget(None, num_preds=2, num_candidates=12, valset_size=30)
    assert resolve_budget("medium", num_components=2, valset_size=30) == expected
    assert resolve_budget(17, num_components=2, valset_size=30) == 17
    for bad in ("huge", 0, -3, True):
        with pytest.raises(AxError, match="budget"):
            resolve_budget(bad, num_components=1, valset_size=10)


def test_quick_preset_fits_its_stated_budget():
    quick = get_preset("quick")
    plan = plan_budget(quick.gepa.budget, trainset_size=quick.train_size, valset_size=quick.val_size)
    assert plan.proposals_min >= 3 and not plan.warnings
    assert quick.ace_train_size == 8 and quick.ace_epochs == 1  # each configuration's playbook: 8 ACE updates
    with pytest.raises(AxError, match="Unknown preset 'fast'; presets are quick, light, medium, heavy"):
        get_preset("fast")


def records(*outcomes: str) -> list[IterationRecord]:
    return [IterationRecord(iteration=i + 1, outcome=o) for i, o in enumerate(outcomes)]


def test_stall_report_names_the_reason():
    assert not stall_report(records("rejected", "accepted", "perfect")).stalled
    rejected = stall_report(records("rejected", "rejected", "no_proposal"))
    assert rejected.stalled and rejected.proposals == 2 and rejected.empty_reflections == 1
    assert rejected.reasons[0].startswith("none of the 2 proposals") and "no usable instruction in 1 of 3" in rejected.reasons[1]
    perfect = stall_report(records("perfect", "perfect"))
    assert perfect.reasons == [perfect.reasons[0]] and perfect.reasons[0].startswith("every minibatch was already")
    assert stall_report([]).reasons[0].startswith("no iteration ran")
    grounded = stall_report(records("rejected", "no_proposal"), "grounded")
    assert "grounded proposer found no new rule or worked example to add in 1 of 2" in grounded.reasons[1]


def test_streak_warning_fires_once_per_streak():
    history = records("accepted", "rejected", "perfect", "rejected")
    assert streak_warning(history[:3], 3) is None
    assert streak_warning(history, 3) == ("GEPA may be stalling: no proposal accepted in the last 3 iterations "
                                          "(2 rejected, 1 minibatches already perfect, 0 without a usable proposal)")
    assert streak_warning(history + records("rejected"), 3) is None


def test_strategies_parse_and_bad_names_are_named():
    assert parse_strategy("gepa -> lora->gepa") == ("gepa", "lora", "gepa")
    assert parse_strategy("") == parse_strategy("baseline") == ()
    with pytest.raises(AxError, match="Unknown optimization step 'lorra' in strategy 'gepa->lorra'"):
        parse_strategy("gepa->lorra")
    assert config_strategies(["baseline", "combined", "lora->gepa"], combined="gepa->lora->gepa") == {
        "baseline": (), "combined": ("gepa", "lora", "gepa"), "lora->gepa": ("lora", "gepa")}
    with pytest.raises(AxError, match="Configuration 'fancy': Unknown optimization step 'fancy'"):
        config_strategies(["gepa", "fancy"])
    assert config_strategies(["baseline", "lora", "combined", "ace->gepa", "gepa->ace"], context=True) == {
        "baseline": ("ace",), "lora": ("lora", "ace"), "combined": ("gepa", "lora", "ace"),
        "ace->gepa": ("ace", "gepa", "ace"), "gepa->ace": ("gepa", "ace")}  # a playbook already adapted last is kept


def test_a_preset_file_round_trips_and_a_bad_one_names_itself(tmp_path):
    from ax.optimizers.presets import preset_argument

    custom = get_preset("quick").model_copy(update={"name": "mine", "train_size": 5})
    argument = preset_argument(custom, tmp_path)
    assert argument == str(tmp_path / "preset-mine.json") and get_preset(argument) == custom
    assert preset_argument(get_preset("quick"), tmp_path) == "quick"  # a named preset stays a name
    with pytest.raises(AxError, match="missing.json does not exist"):
        get_preset(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"name": "bad", "train_size": -1}')
    with pytest.raises(AxError, match="bad.json is not a valid Preset file"):
        get_preset(str(tmp_path / "bad.json"))
    with pytest.raises(AxError, match="Unknown preset 'tiny'"):
        get_preset("tiny")
