"""What a GEPA budget buys, worked out before the run so a user is not surprised.

GEPA spends metric calls (rollouts) in a fixed pattern: the seed program is scored on the whole
valset once; each iteration then scores a parent on a minibatch of `m` training examples, asks
the reflection LM for a new instruction, scores the child on the same minibatch, and only an
accepted child (minibatch score strictly better) is scored on the whole valset. A budget smaller
than the seed evaluation plus one iteration proposes nothing (gepa#375), and the budget is only
checked between iterations, so a run can overshoot it by one iteration.

Presets `light`, `medium` and `heavy` use dspy.GEPA's own `auto` formula, so the numbers match
what a DSPy user gets from `dspy.GEPA(auto=...)`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ax.errors import AxError

AutoBudget = Literal["light", "medium", "heavy"]
AUTO_BUDGETS: tuple[str, ...] = ("light", "medium", "heavy")


def resolve_budget(budget: AutoBudget | int, *, num_components: int, valset_size: int) -> int:
    """Metric calls for a preset name (dspy.GEPA's auto formula) or an explicit positive number."""
    if isinstance(budget, bool) or (isinstance(budget, int) and budget <= 0):
        raise AxError(f"GEPA budget must be a positive number of metric calls or one of {AUTO_BUDGETS}, got {budget!r}")
    if isinstance(budget, int):
        return budget
    if budget not in AUTO_BUDGETS:
        raise AxError(f"Unknown GEPA budget preset {budget!r}; choose one of {AUTO_BUDGETS} or a number of metric calls")
    from dspy.teleprompt.gepa.gepa import AUTO_RUN_SETTINGS, GEPA

    # auto_budget is a pure function of its arguments that happens to be a method; calling it
    # unbound reuses DSPy's formula instead of copying it.
    return GEPA.auto_budget(None, num_preds=max(num_components, 1), num_candidates=AUTO_RUN_SETTINGS[budget]["n"],
                            valset_size=valset_size)


class BudgetPlan(BaseModel):
    """The shape of a GEPA run for a budget, a train/val size and a minibatch size."""

    max_metric_calls: int
    trainset_size: int
    valset_size: int
    minibatch_size: int
    seed_eval_calls: int  # the seed program on the whole valset
    proposals_max: int  # if no proposal is ever accepted (each costs 2 minibatches)
    proposals_min: int  # if every proposal is accepted (each also costs a valset evaluation)
    full_val_evals_max: int  # seed evaluation + one per accepted proposal, at most
    overshoot_max: int  # metric calls one last iteration may add past the budget
    warnings: list[str]

    def describe(self) -> str:
        lines = [
            f"GEPA budget: {self.max_metric_calls} metric calls "
            f"(train {self.trainset_size}, val {self.valset_size}, minibatch {self.minibatch_size}).",
            f"  seed evaluation on the valset: {self.seed_eval_calls} calls",
            f"  proposals: {self.proposals_min} (if every one is accepted) to {self.proposals_max} (if none is), "
            f"each {2 * self.minibatch_size} calls plus {self.valset_size} when accepted",
            f"  full valset evaluations: at most {self.full_val_evals_max}",
            f"  the last iteration may overshoot the budget by up to {self.overshoot_max} calls",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def plan_budget(max_metric_calls: int, *, trainset_size: int, valset_size: int, minibatch_size: int = 3) -> BudgetPlan:
    """Work out proposals and evaluations a budget allows, with warnings for budgets that buy nothing.

    GEPA starts another iteration while fewer than `max_metric_calls` calls are spent, so the
    counts round up and the last iteration may end past the budget.
    """
    if trainset_size < 1 or valset_size < 1:
        raise AxError(f"GEPA needs at least one train and one val example (got {trainset_size} and {valset_size})")
    m = min(minibatch_size, trainset_size)
    after_seed = max(max_metric_calls - valset_size, 0)
    proposals_max = -(-after_seed // (2 * m))
    proposals_min = -(-after_seed // (2 * m + valset_size))
    warnings = []
    if proposals_max == 0:
        warnings.append(f"the budget is spent by the seed evaluation ({valset_size} calls): no proposal will be made; "
                        f"give more than {valset_size} metric calls")
    elif proposals_min == 1 and proposals_max > 1:
        warnings.append(f"only one proposal is sure to fit: an accepted one costs {2 * m + valset_size} calls "
                        f"beyond the seed evaluation")
    if valset_size > max_metric_calls / 4:
        warnings.append(f"the valset ({valset_size}) takes over a quarter of the budget per full evaluation; "
                        "a smaller valset leaves more calls for proposals")
    return BudgetPlan(
        max_metric_calls=max_metric_calls, trainset_size=trainset_size, valset_size=valset_size, minibatch_size=m,
        seed_eval_calls=valset_size, proposals_max=proposals_max, proposals_min=proposals_min,
        full_val_evals_max=1 + proposals_min, overshoot_max=2 * m + valset_size - 1, warnings=warnings,
    )
