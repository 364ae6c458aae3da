"""Evaluation: IRT-scored comparison of baseline, LoRA, GEPA and LoRA+GEPA configurations.

Pure functions on numpy arrays, no model needed:

* ``ax.evals.responses`` - the response-matrix convention (respondents x items, 1/0/NaN)
  and detection of items that carry no information.
* ``ax.evals.irt`` - 1PL/2PL/3PL calibration (marginal MAP by EM), EAP/MAP ability with
  standard errors, item/test information, infit/outfit.
* ``ax.evals.adaptive`` - adaptive testing by maximum information, and its replay against
  a full-length evaluation.
* ``ax.evals.stats`` - intervals, paired tests and Holm for pairwise comparisons; the
  LoRA x GEPA interaction (synergy) with a run-level hierarchical bootstrap, a logistic
  mixed model and a power simulation.
"""
