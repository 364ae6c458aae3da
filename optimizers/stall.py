"""Saying when GEPA is getting nowhere, from the record of what each iteration did.

With a weak local reflection model GEPA can spin through its budget without improving
anything: every proposal loses to its parent, the reflection model returns nothing usable, or
every minibatch is already scored perfectly so there is nothing to reflect on. The run goes on
either way; these functions turn the iteration log into a plain statement of which it was.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["accepted", "rejected", "perfect", "no_proposal", "error"]


class IterationRecord(BaseModel):
    """One GEPA iteration: which parent, what was proposed, and what became of it."""

    iteration: int
    kind: Literal["reflection", "merge"] = "reflection"
    parent: int | None = None
    outcome: Outcome = "no_proposal"
    proposed: dict[str, str] = Field(default_factory=dict)
    subsample_before: float | None = None
    subsample_after: float | None = None
    candidate: int | None = None  # index of the accepted candidate
    note: str | None = None


class StallReport(BaseModel):
    iterations: int
    proposals: int
    accepted: int
    perfect_minibatches: int
    empty_reflections: int
    stalled: bool
    reasons: list[str]


def stall_report(records: list[IterationRecord], proposer: str = "gepa") -> StallReport:
    """Counts over the whole run, and why it stalled if no proposal was accepted.

    `proposer`: "grounded" (ax's, whose empty iterations mean it had no new rule or example to add)
    or "gepa" (DSPy's, whose empty iterations mean the reflection model's answer was unusable)."""
    count = {outcome: sum(r.outcome == outcome for r in records) for outcome in Outcome.__args__}
    proposals = count["accepted"] + count["rejected"]
    reasons = []
    if not records:
        reasons.append("no iteration ran: the budget was spent before the first proposal")
    elif count["perfect"] == len(records):
        reasons.append(f"every minibatch was already scored perfectly ({count['perfect']} of {len(records)}): "
                       "there was no failure to reflect on; use harder training examples or skip_perfect_score=False")
    else:
        if proposals and not count["accepted"]:
            reasons.append(f"none of the {proposals} proposals scored better than its parent on the minibatch: "
                           "the reflection model may be too weak for this task; try a stronger reflection_lm")
        if count["no_proposal"] + count["error"]:
            empty = ("the grounded proposer found no new rule or worked example to add" if proposer == "grounded"
                     else "the reflection model returned no usable instruction")
            reasons.append(f"{empty} in {count['no_proposal'] + count['error']} of {len(records)} iterations")
    stalled = count["accepted"] == 0
    return StallReport(iterations=len(records), proposals=proposals, accepted=count["accepted"],
                       perfect_minibatches=count["perfect"], empty_reflections=count["no_proposal"] + count["error"],
                       stalled=stalled, reasons=reasons if stalled else [])


def streak_warning(records: list[IterationRecord], patience: int) -> str | None:
    """A warning when exactly the last `patience` iterations accepted nothing (so it fires once per streak)."""
    streak = 0
    for record in reversed(records):
        if record.outcome == "accepted":
            break
        streak += 1
    if patience < 1 or streak != patience:
        return None
    tail = records[-patience:]
    parts = {outcome: sum(r.outcome == outcome for r in tail) for outcome in ("rejected", "perfect", "no_proposal")}
    return (f"GEPA may be stalling: no proposal accepted in the last {patience} iterations "
            f"({parts['rejected']} rejected, {parts['perfect']} minibatches already perfect, "
            f"{parts['no_proposal']} without a usable proposal)")
