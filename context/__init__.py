"""ACE-style evolving playbooks and the context assembler that feeds every domain program.

A playbook is a domain's itemized lessons (`[str-00001] helpful=5 harmful=0 :: ...`) that a
Reflector and Curator grow from metric feedback through small deltas merged by code
(`PlaybookLearner`), kept compact by a `Refiner`, and fed with reference passages and demos
into each call's `context` input under a token budget (`ContextAssembler`, `WithContext`).
"""

from ax.context.adaptation import AdaptationReport, Cost, PlaybookLearner, Step
from ax.context.assembler import AssembledContext, ContextAssembler, Demo, WithContext
from ax.context.deltas import AddOp, CountOp, MergeOp, RemoveOp, UpdateOp, apply_deltas, parse_operations
from ax.context.playbook import Bullet, Playbook
from ax.context.refine import RefinePolicy, Refiner
from ax.context.retrieval import BM25, Document, load_documents
from ax.context.roles import Curator, Reflector, cited_bullet_ids
from ax.context.store import PlaybookStore

__all__ = [
    "AdaptationReport", "AddOp", "AssembledContext", "BM25", "Bullet", "ContextAssembler", "Cost", "CountOp",
    "Curator", "Demo", "Document", "MergeOp", "Playbook", "PlaybookLearner", "PlaybookStore", "RefinePolicy",
    "Refiner", "Reflector", "RemoveOp", "Step", "UpdateOp", "WithContext", "apply_deltas", "cited_bullet_ids",
    "load_documents", "parse_operations",
]
