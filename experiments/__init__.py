"""Experiments that train and evaluate together (imported as `ax.experiments`), above both in the layers.

Modules (import them directly; nothing heavy loads with the package):
  ablate           weight decay / rank / target-module sweep settings, and the sweep's bookkeeping over
                   seeds with 95% intervals (training and scoring are callables it is given)
  domain_ablation  a sweep on a domain: adapters trained on its train split, scored on its dev items
                   by the evaluator
"""
