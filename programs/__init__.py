"""Domain programs: twelve one-call built-in task families, three agent-shaped ones, and the toolkit to add your own.

    from ax.programs import Domain, get_domain, label_metric

    domain = get_domain("healthcare")          # or any of list_domains()
    program, splits = domain.program(), domain.splits()

A new domain is a program, a metric and data:

    Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data="tickets.jsonl")
"""

from ax.programs.domain import AGENT_DOMAINS, BUILTIN_DOMAINS, Domain, TaskKind
from ax.programs.generation import Splits
from ax.programs.imported import ImportResult, import_domain, load_domain
from ax.programs.loading import FieldMapping, LoadedExamples, LoadSummary, load_examples
from ax.programs.metrics import (
    Step, label_metric, mean_metric, numeric_metric, passing, score_of, step_metric, step_scores, text_metric,
)
from ax.programs.modules import ExtractThenCompute, PredictProgram, context_field
from ax.programs.registry import get_domain, list_domains, register_domain

__all__ = [
    "AGENT_DOMAINS", "BUILTIN_DOMAINS", "Domain", "ExtractThenCompute", "FieldMapping", "ImportResult", "LoadSummary",
    "LoadedExamples", "PredictProgram", "Splits", "Step", "TaskKind", "context_field", "get_domain", "import_domain",
    "label_metric", "list_domains", "load_domain", "load_examples", "mean_metric", "numeric_metric", "passing",
    "register_domain", "score_of", "step_metric", "step_scores", "text_metric",
]
