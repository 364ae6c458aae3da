"""Assemble each call's `context` from playbook bullets, reference passages and demonstrations.

Every item is ranked for relevance to the call's input (BM25 within its source, scaled to the
source's best match so sources compete fairly), packed greedily into a token budget counted
with the model's own tokenizer on the final text, and rendered in a fixed order, so the same
input and playbook version always give the same context (and the same prompt-cache key).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dspy
from pydantic import BaseModel

from ax.context.playbook import Playbook, render_bullets
from ax.context.retrieval import BM25, Document
from ax.context.tokens import token_counter
from ax.errors import AxError

Source = Literal["playbook", "document", "demo"]
_SOURCE_ORDER: dict[str, int] = {"playbook": 0, "document": 1, "demo": 2}
PLAYBOOK_HEADER = "# Playbook"
CITE_HINT = " (in your reasoning, cite the ids of the bullets you use, like [str-00001])"


class Demo(BaseModel):
    """A worked example shown in the context: input fields and the expected output fields."""

    inputs: dict[str, str]
    outputs: dict[str, str]

    @classmethod
    def from_example(cls, example: dspy.Example) -> Demo:
        try:
            inputs, labels = example.inputs(), example.labels()
        except ValueError as error:
            raise AxError("demonstrations need their input fields marked: example.with_inputs(...)") from error
        return cls(inputs={k: str(v) for k, v in inputs.items()}, outputs={k: str(v) for k, v in labels.items()})

    def render(self) -> str:
        fields = [f"{k}: {v}" for k, v in self.inputs.items()] + [f"{k}: {v}" for k, v in self.outputs.items()]
        return "\n".join(fields)


class ContextItem(BaseModel):
    source: Source
    key: str  # bullet id, document id, or demo index
    score: float  # relevance scaled to [0, 1] within the source


class AssembledContext(BaseModel):
    text: str
    tokens: int
    items: list[ContextItem]

    @property
    def bullet_ids(self) -> list[str]:
        return [item.key for item in self.items if item.source == "playbook"]


class ContextAssembler:
    """Builds the `context` string for one input under `token_budget` tokens.

    `tokenizer`: the model's tokenizer (HF tokenizer, any object with `encode`, or a model
    path); without one, whitespace words are counted, which undercounts real tokens.
    Documents with no word in common with the input are never included; bullets and demos
    are, after the relevant ones, when room is left (a playbook's general strategies apply
    everywhere). The playbook may change between calls (adaptation); its index follows.
    `cite_hint` asks the model to cite bullet ids (ACE's "generator marks bullets used"); turn
    it off for programs without a reasoning field if ids leak into answers."""

    def __init__(self, playbook: Playbook | None = None, documents: Sequence[Document | str] = (),
                 demos: Sequence[Demo | dspy.Example] = (), *, token_budget: int = 1024, tokenizer: Any = None,
                 max_documents: int = 4, max_demos: int = 2, cite_hint: bool = True):
        if token_budget < 1:
            raise AxError(f"token_budget must be at least 1, got {token_budget}")
        self.playbook = playbook
        self.documents = [d if isinstance(d, Document) else Document(id=f"doc-{i}", text=d)
                          for i, d in enumerate(documents)]
        self.demos = [d if isinstance(d, Demo) else Demo.from_example(d) for d in demos]
        self.token_budget = token_budget
        self.count_tokens = token_counter(tokenizer)
        self.max_documents, self.max_demos = max_documents, max_demos
        self.playbook_header = PLAYBOOK_HEADER + (CITE_HINT if cite_hint else "")
        self._document_index = BM25([d.text for d in self.documents])
        self._demo_index = BM25([" ".join(d.inputs.values()) for d in self.demos])
        self._bullet_index: tuple[tuple[int, int], BM25] | None = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> ContextAssembler:
        """Shared, not copied: optimizers deep-copy programs for each candidate, and every copy
        should read the same live playbook (and not duplicate the tokenizer and indexes)."""
        return self

    def __call__(self, query: str) -> str:
        return self.assemble(query).text

    def assemble(self, query: str) -> AssembledContext:
        chosen: list[ContextItem] = []
        text, tokens = "", 0
        for candidate in self._ranked(query):
            trial_text = self.render([*chosen, candidate])
            trial_tokens = self.count_tokens(trial_text)
            if trial_tokens <= self.token_budget:
                chosen.append(candidate)
                text, tokens = trial_text, trial_tokens
        return AssembledContext(text=text, tokens=tokens, items=chosen)

    def render(self, items: Sequence[ContextItem]) -> str:
        """Playbook bullets (in playbook order, by section), then passages and demos by rank."""
        keys = {source: [i.key for i in items if i.source == source] for source in _SOURCE_ORDER}
        parts = []
        if keys["playbook"] and self.playbook is not None:
            wanted = set(keys["playbook"])
            parts.append(self.playbook_header + "\n" + render_bullets(b for b in self.playbook.bullets if b.id in wanted))
        if keys["document"]:
            by_id = {d.id: d for d in self.documents}
            parts.append("# Reference documents\n" + "\n\n".join(f"[{k}] {by_id[k].text}" for k in keys["document"]))
        if keys["demo"]:
            parts.append("# Examples\n" + "\n\n".join(self.demos[int(k)].render() for k in keys["demo"]))
        return "\n\n".join(parts)

    def _ranked(self, query: str) -> list[ContextItem]:
        """All candidates, most relevant first; ties go to playbook, then documents, then demos,
        and within the playbook to the bullet with the better helpful - harmful record."""
        candidates: list[tuple[tuple, ContextItem]] = []
        if self.playbook is not None and self.playbook.bullets:
            bullets = self.playbook.bullets
            for position, score in enumerate(_scaled(self._bullets_bm25().scores(query))):
                b = bullets[position]
                item = ContextItem(source="playbook", key=b.id, score=score)
                candidates.append(((-score, 0, -(b.helpful - b.harmful), position), item))
        document_scores = _scaled(self._document_index.scores(query))
        top_documents = sorted((i for i, s in enumerate(document_scores) if s > 0),
                               key=lambda i: (-document_scores[i], i))[: self.max_documents]
        for rank, i in enumerate(top_documents):
            item = ContextItem(source="document", key=self.documents[i].id, score=document_scores[i])
            candidates.append(((-document_scores[i], 1, 0, rank), item))
        demo_scores = _scaled(self._demo_index.scores(query))
        top_demos = sorted(range(len(self.demos)), key=lambda i: (-demo_scores[i], i))[: self.max_demos]
        for rank, i in enumerate(top_demos):
            candidates.append(((-demo_scores[i], 2, 0, rank), ContextItem(source="demo", key=str(i), score=demo_scores[i])))
        return [item for _, item in sorted(candidates, key=lambda pair: pair[0])]

    def _bullets_bm25(self) -> BM25:
        """The bullet index, rebuilt when the playbook object or its version changes."""
        key = (id(self.playbook), self.playbook.version)
        with self._lock:
            if self._bullet_index is None or self._bullet_index[0] != key:
                self._bullet_index = (key, BM25([f"{b.section} {b.content}" for b in self.playbook.bullets]))
            return self._bullet_index[1]


def _scaled(scores: list[float]) -> list[float]:
    top = max(scores, default=0.0)
    return [s / top for s in scores] if top > 0 else [0.0] * len(scores)


class WithContext(dspy.Module):
    """Wrap a domain program so each call gets `context` filled by the assembler.

    The query is the call's other input values. GEPA sees the program's predictors unchanged
    (it evolves instructions around the context) and traces used for LoRA training carry the
    context the model actually saw. A caller that passes `context=` explicitly bypasses assembly."""

    def __init__(self, program: dspy.Module, assembler: ContextAssembler, *, field: str = "context"):
        super().__init__()
        if not any(field in predictor.signature.input_fields for _, predictor in program.named_predictors()):
            raise AxError(f"{type(program).__name__} has no predictor with an input field {field!r} "
                          "for the assembled context; add `context: str = dspy.InputField()` to its signature")
        self.program = program
        self.assembler = assembler
        self.field = field

    def forward(self, **inputs):
        return self.run(**inputs)[0]

    def run(self, **inputs) -> tuple[dspy.Prediction, AssembledContext | None]:
        """The prediction and the context assembled for it (None when the caller gave one)."""
        if self.field in inputs:
            return self.program(**inputs), None
        assembled = self.assembler.assemble(self.query(inputs))
        return self.program(**inputs, **{self.field: assembled.text}), assembled

    def query(self, inputs: Mapping[str, Any]) -> str:
        return "\n".join(str(v) for k, v in inputs.items() if k != self.field)
