"""Optimizers: GEPA prompt evolution, LoRA adapters, ACE playbooks, and strategies that chain them.

    from ax.optimizers import optimize
    optimize("legal", configs=["baseline", "lora", "gepa", "combined"], seeds=[0, 1, 2], preset="quick")
"""

from ax.optimizers.budget import plan_budget
from ax.optimizers.configurations import optimize
from ax.optimizers.gepa_run import GepaOutcome, GepaSettings, run_gepa
from ax.optimizers.lora_step import LoraSettings
from ax.optimizers.manifest import ConfigManifest, load_configuration, read_manifest
from ax.optimizers.presets import PRESETS, Preset
from ax.optimizers.provider import AxProvider, finetunable
from ax.optimizers.strategies import parse_strategy, run_strategy
from ax.programs.metrics import passing

__all__ = [
    "PRESETS", "AxProvider", "ConfigManifest", "GepaOutcome", "GepaSettings", "LoraSettings", "Preset", "finetunable",
    "load_configuration", "optimize", "parse_strategy", "passing", "plan_budget", "read_manifest", "run_gepa",
    "run_strategy",
]
