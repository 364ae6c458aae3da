"""ax: optimize DSPy programs for domain work with LoRA adapters and GEPA, evaluated with IRT."""

from ax.errors import AxError

__version__ = "0.1.0"

__all__ = ["AxError", "__version__"]
