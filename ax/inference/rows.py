"""The rows a backend decodes together, each in a slot of the batch's key/value rooms.

Each row carries its own adapter, constraint, budget, stops and random generator, so a row
decodes the same whichever rows share its batch. New rows join between steps, taking the slots
of finished ones, with the states of their cached prefix; the rest of a joining row's prompt is
fed in the next step beside the other rows' tokens (ax/inference/row_attention.py), rows of one
adapter next to each other (ax/inference/lora_rows.py). A row's states
fill its slot from column 0, a column per position, so nothing a row computes depends on the
rows beside it.

A step may feed a row more than its pending token: the draft tokens it checks
(ax/inference/speculation.py). The columns of draft tokens it does not keep are written over by its next step.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import torch

from ax.inference.constraints import Constraint
from ax.inference.generation import Generation, GenerationRequest
from ax.inference.kv_cache import Rooms
from ax.inference.row_attention import forward_rows
from ax.inference.speculation import lookup_draft

States = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per layer: keys and values [1, heads, columns, dim]


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    positions = [text.find(s) for s in stop if s in text]
    return text[: min(positions)] if positions else text


@dataclass
class Row:
    request: GenerationRequest
    future: Future
    prompt: list[int]
    constraint: Constraint | None
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    pending: int = field(init=False)  # the next token to feed: the prompt's last, then each chosen one
    backlog: list[int] = field(default_factory=list)  # prompt tokens before it with no states yet
    # A row copying a span keeps confirming whole drafts; once it writes on its own, drafts miss.
    # So its drafts grow by 2 while wholly kept (as transformers' schedule for assistant models
    # does) and shrink to what was kept, sparing the step tokens that would not be kept.
    draft_limit: int = 1 << 30

    def __post_init__(self) -> None:
        self.pending = self.prompt[-1]

    def draft(self, max_tokens: int) -> list[int]:
        """Tokens to check after the pending one this step: only a greedy, unconstrained row's
        choice is its argmax, which is what a draft is checked against; none past its budget."""
        params = self.request.params
        if self.done or params.sampled or self.constraint is not None:
            return []
        limit = min(max_tokens, self.draft_limit, params.max_new_tokens - len(self.tokens) - 1)
        return lookup_draft(self.prompt + self.tokens, limit)

    def choose(self, logits: torch.Tensor, argmax: int) -> int | None:
        """The next token from this row's logits (`argmax`: their argmax, taken for the whole batch
        at once), or None when its constraint allows none."""
        params = self.request.params
        if self.constraint is None and not params.sampled:
            return argmax
        if self.constraint is not None:
            allowed = self.constraint.allowed(self.tokens)
            if allowed is not None:
                if not len(allowed):
                    return None
                allowed = allowed.to(logits.device)
                logits = torch.full_like(logits, float("-inf")).index_copy_(0, allowed, logits[allowed])
        if not params.sampled:
            return int(logits.argmax())
        scores = logits / params.temperature
        if params.top_p is not None and params.top_p < 1:
            ordered, order = scores.sort(descending=True)
            probs = ordered.softmax(-1)
            ordered[probs.cumsum(-1) - probs > params.top_p] = float("-inf")  # the first always stays
            scores = torch.full_like(scores, float("-inf")).scatter_(0, order, ordered)
        return int(torch.multinomial(scores.softmax(-1), 1, generator=self.generator))

    def take(self, logits: torch.Tensor, argmax: list[int], draft: list[int], tokenizer: Any) -> int:
        """Choose this row's next tokens from the logits after its pending token and each draft
        token [fed, vocab], keeping draft tokens while they are what it chooses; marks the row done
        when it finishes. Returns how many fed tokens' states stay: the pending one and each kept."""
        kept = 0
        while True:
            token = self.choose(logits[kept], argmax[kept])
            self.done = self.add(token, tokenizer)
            kept += 1
            if self.done or kept > len(draft) or token != draft[kept - 1]:
                break
        if draft:
            confirmed = kept - 1
            self.draft_limit = len(draft) + 2 if confirmed == len(draft) else max(1, confirmed)
        return kept

    def add(self, token: int | None, tokenizer: Any) -> bool:
        """Record the chosen token; True when the row is finished."""
        params = self.request.params
        if token is None or token == tokenizer.eos_token_id:
            return True
        self.tokens.append(token)
        self.pending = token
        if len(self.tokens) >= params.max_new_tokens:
            return True
        return bool(params.stop) and any(s in tokenizer.decode(self.tokens[-8:]) for s in params.stop)

    def result(self, tokenizer: Any) -> Generation:
        text = cut_at_stop(tokenizer.decode(self.tokens, skip_special_tokens=True), self.request.params.stop)
        return Generation(text=text, prompt_tokens=len(self.prompt), completion_tokens=len(self.tokens))


class Batch:
    """The rows decoding now, a row to a slot of per-layer rooms with space for what they may still generate.

    A finished row's slot is taken by the next row to join; until then it is left alone, and a
    step feeds only the rows still decoding.
    """

    def __init__(self) -> None:
        self.rows: list[Row | None] = []
        self.lengths: list[int] = []  # the states each slot holds
        self.rooms = Rooms()
        self.fed = 0  # tokens fed in the latest step
        self._stepped: list[int] = []  # its rows' slots

    @property
    def live(self) -> list[Row]:
        return [self.rows[slot] for slot in self._live_slots()]

    def _live_slots(self) -> list[int]:
        """The slots of rows still decoding, those of one adapter together."""
        live = [slot for slot, row in enumerate(self.rows) if row is not None and not row.done]
        return sorted(live, key=lambda slot: self.rows[slot].request.adapter or "")

    def admit(self, row: Row, states: States | None, capacity: int) -> None:
        """Give `row` a slot, holding `states` (its prompt's first tokens'), with room for `capacity`
        columns; the rest of its prompt is fed with its pending token in the next step."""
        live = set(self._live_slots())
        slot = next((slot for slot in range(len(self.rows)) if slot not in live), len(self.rows))
        if slot == len(self.rows):
            self.rows.append(None)
            self.lengths.append(0)
        self.rooms.reserve(len(self.rows), capacity)
        length = states[0][0].shape[2] if states else 0
        if states:
            self.rooms.write(slot, states)
        row.backlog = row.prompt[length:-1]
        self.rows[slot], self.lengths[slot] = row, length

    def states(self, row: Row, columns: int) -> States:
        """Copies of the first `columns` states of `row`."""
        return self.rooms.read(next(slot for slot, held in enumerate(self.rows) if held is row), columns)

    def step(self, model: Any, adapters: Callable[[list[Row]], ContextManager[dict[str, Any]]],
             drafts: list[list[int]]) -> torch.Tensor:
        """Feed each live row its backlog, its pending token and its draft (`drafts`, in the order
        of `live`), within `adapters(the row of each fed token)`, which yields the forward's keyword
        arguments; the logits after the pending token and each draft token, rows in that order
        [sum of 1 + draft, vocab]. `keep` must follow."""
        slots = self._live_slots()
        rows = [self.rows[slot] for slot in slots]
        fed = [[*row.backlog, row.pending, *draft] for row, draft in zip(rows, drafts)]
        wanted, start = [], 0
        for row, tokens in zip(rows, fed):
            wanted += range(start + len(row.backlog), start + len(tokens))
            start += len(tokens)
        self.fed, self._stepped = start, slots
        per_token = [row for row, tokens in zip(rows, fed) for _ in tokens]
        with adapters(per_token) as kwargs:
            return forward_rows(model, self.rooms, slots, [self.lengths[slot] for slot in slots], fed, wanted,
                                **kwargs)

    def keep(self, kept: list[int]) -> None:
        """After a step, each fed row's number of tokens past its backlog whose states stay (the
        pending one and each draft token kept), in the order the step fed them."""
        for slot, count in zip(self._stepped, kept):
            row = self.rows[slot]
            self.lengths[slot] += len(row.backlog) + count
            row.backlog = []
