"""Evaluation: IRT-scored comparison of baseline, LoRA, GEPA and LoRA+GEPA configurations.

Pure functions on numpy arrays, no model needed:

* ``ax.evals.responses`` - the response-matrix convention (respondents x items, 1/0/NaN)
  and detection of items that carry no information.
* ``ax.evals.irt`` - 1PL/2PL/3PL calibration (marginal MAP by EM), EAP/MAP ability with
  standard errors, item/test information, infit/outfit.
* ``ax.evals.adaptive`` - adaptive testing by maximum information that forecasts the
  full-pool accuracy and stops on that forecast's standard error; its replay against a
  full-length evaluation.
* ``ax.evals.stats`` - intervals, paired tests and Holm for pairwise comparisons; the
  LoRA x GEPA interaction (synergy) with a run-level hierarchical bootstrap, a logistic
  mixed model and a power simulation.

From programs to a report:

* ``ax.configuration`` (below the optimizers and the evaluator) - what a respondent is (program,
  adapter, playbook, its 2x2 cell and seed) and ``configurations.json``, the list a run
  directory's optimizers write; ``ax.evals.configuration`` rebuilds one into a runnable program.
* ``ax.evals.matrix_store`` - every answer on disk (``RUN_DIR/responses``), atomically.
* ``ax.evals.runner`` - answers missing cells through the LM client's batching threads.
* ``ax.evals.calibration`` - items calibrated on the whole respondent pool (2PL from 100
  respondents, else 1PL), abilities on the fixed items.
* ``ax.evals.comparison`` - per domain and pooled: intervals, pairwise tests, synergy, verdict.
* ``ax.evals.adaptive_eval`` - adaptive testing checked against full evaluations, and run live.
* ``ax.evals.report`` / ``provenance`` / ``plots`` / ``render`` - report.json, the manifest,
  the plots and report.md / report.html; ``ax.evals.cli`` - ``ax evaluate`` and ``ax report``.
"""
