"""What an optimization step cost: rollouts, LM calls and tokens, reflection calls, training, wall time.

Tokens come from the ax client's usage log, which every thread's calls reach (DSPy's
`track_usage` does not follow calls into `dspy.Evaluate`'s worker threads), and from the
reflection LM's own history when reflection runs elsewhere (a litellm model).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel


class Cost(BaseModel):
    rollouts: int = 0  # program runs scored by the metric
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reflection_calls: int = 0
    reflection_tokens: int = 0
    train_steps: int = 0
    train_tokens: int = 0  # real (non-padding) tokens the LoRA trainer processed
    wall_s: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{name: getattr(self, name) + getattr(other, name) for name in Cost.model_fields})


def _client_totals(lm: Any) -> tuple[int, int, int]:
    usage = getattr(getattr(lm, "client", None), "usage", None)
    if usage is None:
        return 0, 0, 0
    totals = usage.totals()
    return totals.calls, totals.prompt_tokens, totals.completion_tokens


def _history_tokens(entries: list[dict]) -> tuple[int, int]:
    """(prompt, completion) tokens of DSPy history entries."""
    usages = [e.get("usage") or {} for e in entries]
    return (sum(int(u.get("prompt_tokens") or 0) for u in usages),
            sum(int(u.get("completion_tokens") or 0) for u in usages))


class CostMeter:
    """Measures LM usage and wall time between construction and `stop()`.

    `reflection_lm` should be an LM copy used only for reflection (a fresh `history`), so its
    calls can be told apart from the task model's even when both run on the same ax client.
    """

    def __init__(self, lm: Any, reflection_lm: Any = None):
        self.lm, self.reflection_lm = lm, reflection_lm
        self._start = _client_totals(lm)
        self._reflection_start = len(getattr(reflection_lm, "history", []) or [])
        self._t0 = time.perf_counter()

    def stop(self, *, rollouts: int = 0) -> Cost:
        calls, prompt, completion = (after - before for after, before in zip(_client_totals(self.lm), self._start))
        reflection = list(getattr(self.reflection_lm, "history", []) or [])[self._reflection_start:]
        shares_client = getattr(self.reflection_lm, "client", None) is getattr(self.lm, "client", object())
        reflection_prompt, reflection_completion = _history_tokens(reflection)
        if not shares_client:  # reflection ran outside the ax client: add its calls to the totals
            calls, prompt, completion = calls + len(reflection), prompt + reflection_prompt, completion + reflection_completion
        return Cost(rollouts=rollouts, lm_calls=calls, prompt_tokens=prompt, completion_tokens=completion,
                    reflection_calls=len(reflection), reflection_tokens=reflection_prompt + reflection_completion,
                    wall_s=time.perf_counter() - self._t0)
