"""Experiments that train and evaluate together (imported as `ax.experiments`), above both in the layers.

The sweep's settings and bookkeeping are exported here (training and scoring are callables it is
given). A sweep on a domain, `ax.experiments.domain_ablation`, is imported from its module: it loads
torch and transformers.
"""

from ax.experiments.ablate import (
    KINDS, RunRecord, SettingSummary, SweepReport, SweepSetting, confidence_interval, rank_settings,
    rank_sweep_alpha_ratio, run_sweep, summarize, sweep_settings, target_module_settings, weight_decay_settings,
)

__all__ = [
    "KINDS", "RunRecord", "SettingSummary", "SweepReport", "SweepSetting", "confidence_interval", "rank_settings",
    "rank_sweep_alpha_ratio", "run_sweep", "summarize", "sweep_settings", "target_module_settings",
    "weight_decay_settings",
]
