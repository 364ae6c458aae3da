"""On-disk response cache keyed by what determines an answer: model and adapter weights, prompt, decoding.

Keys use fingerprints (hashes of weights), not names, so retraining an adapter under the same
name never serves stale answers, and two names for the same weights share entries.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

# Bumped whenever the client's decoding changes what a prompt yields (stop strings, constraints),
# so answers cached by an older ax are not served as this one's.
DECODING_VERSION = 4


class ResponseCache:
    def __init__(self, directory: str | Path | None, enabled: bool = True):
        self.enabled = enabled and directory is not None
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._store = None
        if self.enabled:
            import diskcache

            self._store = diskcache.Cache(str(directory))

    @staticmethod
    def key(**parts: Any) -> str:
        parts["decoding_version"] = DECODING_VERSION
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, key: str) -> Any | None:
        if not self.enabled:
            return None
        value = self._store.get(key)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        if self.enabled:
            self._store.set(key, value)

    def stats(self) -> dict[str, int | bool]:
        return {"enabled": self.enabled, "hits": self.hits, "misses": self.misses}
