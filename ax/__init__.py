"""ax: optimize DSPy programs for domain work with LoRA adapters and GEPA, evaluated with IRT."""

import importlib
import os

# ax runs offline by default; litellm would otherwise try to download its price map on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from ax.errors import AxError  # noqa: E402

__version__ = "0.1.0"

# Loaded on first use: imported here, every ax.* import (lower layers too) would load dspy, scipy, matplotlib, ax.pipeline.
_LAZY = {
    "LM": "ax.client", "AxLM": "ax.client", "Client": "ax.client",
    "Domain": "ax.programs", "register_domain": "ax.programs", "get_domain": "ax.programs",
    "list_domains": "ax.programs",
    "optimize": "ax.optimizers", "compare": "ax.pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ax' has no attribute {name!r}")


__all__ = ["AxError", "__version__", *_LAZY]
