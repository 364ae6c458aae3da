"""Load time of the embedded model: first load (GGUF -> safetensors conversion) vs. reload from the cache.

    python bench/model_load.py

Runs both loads in one process against a fresh, temporary AX_CACHE_DIR, so the first load
always converts; prints both times and the ratio.
"""

from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AX_CACHE_DIR"] = cache
        from ax.model import load_model

        started = time.perf_counter()
        first = load_model()
        first_s = time.perf_counter() - started
        del first
        started = time.perf_counter()
        again = load_model()
        again_s = time.perf_counter() - started
        print(f"model={again.name} fingerprint={again.fingerprint}")
        print(f"first load (GGUF conversion): {first_s:6.1f} s")
        print(f"reload (safetensors cache)  : {again_s:6.2f} s")
        print(f"ratio: {first_s / again_s:.0f}x")


if __name__ == "__main__":
    main()
