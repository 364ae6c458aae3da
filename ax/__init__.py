"""ax: optimize DSPy programs for domain work with LoRA adapters and GEPA, evaluated with IRT."""

import os

# ax runs offline by default; litellm would otherwise try to download its price map on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from ax.errors import AxError  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    # The client pulls in torch and dspy; import it only when used, so `ax --help` stays fast.
    if name in ("LM", "AxLM", "Client"):
        import ax.client

        return getattr(ax.client, name)
    raise AttributeError(f"module 'ax' has no attribute {name!r}")


__all__ = ["AxError", "LM", "AxLM", "Client", "__version__"]
