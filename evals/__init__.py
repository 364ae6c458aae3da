"""Evaluation: IRT-scored comparison of baseline, LoRA, GEPA and LoRA+GEPA configurations.

    from ax.evals import evaluate_run_dir           # answers every missing (configuration, item) cell
    from ax.evals.report import build_report        # reads only the response store

Filling the store is exported here. The statistics and the report (``irt``, ``adaptive``, ``stats``,
``calibration``, ``comparison``, ``report``, ``render``, ``plots``) are imported from their modules:
they load scipy, statsmodels and matplotlib, and `ax --help` imports this package.
"""

from ax.evals.matrix_store import ResponseMatrix, ResponseStore
from ax.evals.runner import evaluate_configurations, evaluate_run_dir

__all__ = ["ResponseMatrix", "ResponseStore", "evaluate_configurations", "evaluate_run_dir"]
