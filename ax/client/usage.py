"""Per-call token counts and latency, summed per run."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field


@dataclass
class CallUsage:
    adapter: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool


@dataclass
class UsageTotals:
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    per_adapter: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class UsageLog:
    """Thread-safe record of every call; shared by all LMs built on one client."""

    def __init__(self):
        self._lock = threading.Lock()
        self.calls: list[CallUsage] = []

    def record(self, usage: CallUsage) -> None:
        with self._lock:
            self.calls.append(usage)

    def mark(self) -> int:
        """Where the log stands now: `totals(since=mark)` sums the calls recorded after it."""
        with self._lock:
            return len(self.calls)

    def totals(self, since: int = 0) -> UsageTotals:
        totals = UsageTotals()
        with self._lock:
            calls = self.calls[since:]
        for call in calls:
            totals.calls += 1
            totals.cached_calls += call.cached
            totals.prompt_tokens += call.prompt_tokens
            totals.completion_tokens += call.completion_tokens
            totals.latency_s += call.latency_s
            name = call.adapter or "base"
            totals.per_adapter[name] = totals.per_adapter.get(name, 0) + 1
        return totals

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
