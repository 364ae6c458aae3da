"""What a piece of work cost: rollouts, LM calls and tokens, reflection calls, training, wall time.

One model and one meter for the optimizers' steps (stage.json, manifest.json, GEPA's cost.json)
and ACE adaptation's roles (adaptation-*.json, one `Cost` per role).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from ax.client.usage import UsageLog


class Cost(BaseModel):
    rollouts: int = 0  # program runs scored by the metric
    lm_calls: int = 0
    # Adaptation checkpoints written before there was one Cost name three fields input_tokens, output_tokens, seconds.
    prompt_tokens: int = Field(0, validation_alias=AliasChoices("prompt_tokens", "input_tokens"))
    completion_tokens: int = Field(0, validation_alias=AliasChoices("completion_tokens", "output_tokens"))
    reflection_calls: int = 0
    reflection_tokens: int = 0
    train_steps: int = 0
    train_tokens: int = 0  # real (non-padding) tokens the LoRA trainer processed
    wall_s: float = Field(0.0, validation_alias=AliasChoices("wall_s", "seconds"))

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{name: getattr(self, name) + getattr(other, name) for name in Cost.model_fields})


class _History:
    """The entries an LM adds to its DSPy history from now on. DSPy keeps only the last
    `max_history_size` calls, so the entry last seen marks the start, not a count."""

    def __init__(self, lm: Any):
        self.lm = lm
        self._mark = lm.history[-1] if getattr(lm, "history", None) else None

    def entries(self) -> list[dict]:
        history = list(getattr(self.lm, "history", None) or [])
        for index in range(len(history) - 1, -1, -1):
            if history[index] is self._mark:
                return history[index + 1:]
        return history  # all new (or more than DSPy keeps)


def _counts(entries: list[dict]) -> tuple[int, int, int]:
    """(calls, prompt tokens, completion tokens) of DSPy history entries."""
    usages = [entry.get("usage") or {} for entry in entries]
    return (len(entries), sum(int(u.get("prompt_tokens") or 0) for u in usages),
            sum(int(u.get("completion_tokens") or 0) for u in usages))


def _client_log(lm: Any) -> UsageLog | None:
    usage = getattr(getattr(lm, "client", None), "usage", None)
    return usage if isinstance(usage, UsageLog) else None


class CostMeter:
    """LM calls, tokens and wall time from construction to `stop()` (which may be called repeatedly).

    `lm`: the LM, or a list of LMs, whose calls count. An ax LM's calls are read from its client's
    usage log, where every view on the client and every thread records them (DSPy's `track_usage`
    hands each `dspy.Evaluate` worker thread a copy of its tracker, so their calls never reach it);
    another LM's (a litellm model, a test double) from its DSPy history. `reflection_lm` should be
    an LM copy used only for reflection (a fresh `history`), so its calls can be told apart from the
    task model's even when both run on the same ax client; they count in the totals too.
    """

    def __init__(self, lm: Any, reflection_lm: Any = None):
        lms = [one for one in (lm if isinstance(lm, list) else [lm]) if one is not None]
        self._logs = {id(log): (log, log.mark()) for log in map(_client_log, lms) if log is not None}
        self._histories = list({id(one): _History(one) for one in lms if _client_log(one) is None}.values())
        self._reflection = _History(reflection_lm) if reflection_lm is not None else None
        log = _client_log(reflection_lm)
        self._reflection_in_totals = (id(log) in self._logs if log is not None
                                      else any(h.lm is reflection_lm for h in self._histories))
        self._t0 = time.perf_counter()

    def stop(self, *, rollouts: int = 0) -> Cost:
        counts = [_counts(history.entries()) for history in self._histories]
        for log, mark in self._logs.values():
            totals = log.totals(since=mark)
            counts.append((totals.calls, totals.prompt_tokens, totals.completion_tokens))
        reflection = _counts(self._reflection.entries()) if self._reflection is not None else (0, 0, 0)
        if not self._reflection_in_totals:  # reflection ran outside the measured LMs (a litellm model)
            counts.append(reflection)
        calls, prompt, completion = (sum(column) for column in zip((0, 0, 0), *counts))
        return Cost(rollouts=rollouts, lm_calls=calls, prompt_tokens=prompt, completion_tokens=completion,
                    reflection_calls=reflection[0], reflection_tokens=reflection[1] + reflection[2],
                    wall_s=time.perf_counter() - self._t0)


@contextmanager
def measured(costs: dict[str, Cost], key: str, lm: Any) -> Iterator[None]:
    """Adds what the block cost (the calls of `lm`, an LM or a list, and its wall time) to `costs[key]`."""
    meter = CostMeter(lm)
    try:
        yield
    finally:
        costs[key] = costs.get(key, Cost()) + meter.stop()
