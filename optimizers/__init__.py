"""Optimizers: GEPA prompt evolution, LoRA adapters, ACE playbooks, and strategies that chain them.

    from ax.optimizers import optimize
    optimize("legal", configs=["baseline", "lora", "gepa", "combined"], seeds=[0, 1, 2], preset="quick")

Names are imported on first use (they pull in dspy, gepa and torch), so `ax --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "optimize": "ax.optimizers.configurations",
    "run_gepa": "ax.optimizers.gepa_run",
    "GepaSettings": "ax.optimizers.gepa_run",
    "GepaOutcome": "ax.optimizers.gepa_run",
    "LoraSettings": "ax.optimizers.lora_step",
    "Preset": "ax.optimizers.presets",
    "PRESETS": "ax.optimizers.presets",
    "plan_budget": "ax.optimizers.budget",
    "parse_strategy": "ax.optimizers.strategies",
    "run_strategy": "ax.optimizers.strategies",
    "ConfigManifest": "ax.optimizers.manifest",
    "read_manifest": "ax.optimizers.manifest",
    "load_configuration": "ax.optimizers.manifest",
    "AxProvider": "ax.optimizers.provider",
    "finetunable": "ax.optimizers.provider",
    "passing": "ax.programs.metrics",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ax.optimizers' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
