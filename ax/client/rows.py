"""The rows a backend decodes together, and the key/value states they share one batch of.

Each row carries its own adapter, constraint, budget, stops and random generator, so a row
decodes the same whichever rows share its batch. New rows join between steps, taking the places
of finished ones: the states of all are laid side by side, each row padded on the left to the
batch's width, with the attention mask 0 on the pads. Every row's keys already carry
their rotary positions, and each row is fed its own position ids, so where a row's pads sit
changes nothing it computes.

A step may feed a row more than its pending token: the draft tokens it checks (ax/client/
speculation.py). The columns of draft tokens it does not keep stay in the cache, masked for good.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ax.client.constraints import Constraint
from ax.client.generation import Generation, GenerationRequest
from ax.client.kv_cache import forward_with_cache, reserved_cache
from ax.client.speculation import lookup_draft

States = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values [rows, heads, width, dim]


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
    # A row copying a span keeps confirming whole drafts; once it writes on its own, drafts miss.
    # So its drafts grow by 2 while wholly kept (as transformers' schedule for assistant models
    # does) and shrink to what was kept, sparing the batch columns that would not be kept.
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


@dataclass
class Part:
    """Rows with their states: `mask` [rows, width] is 1 where a row has a token, `positions`
    holds each row's position for its pending token."""

    rows: list[Row]
    states: States
    mask: torch.Tensor
    positions: torch.Tensor


class Batch:
    """The rows decoding now, their states in a cache with room for what they may still generate.

    A finished row stays in the batch, computing what nobody reads, until new rows come to take
    its place: on 2 CPU cores a decode step of 8 rows cost 99 ms against 70 ms for one row
    (`python bench/decode_cost.py --repeats 15`), so a spare row is nearly free, while every
    regrouping copies the states of all rows.
    """

    def __init__(self, parts: list[Part], config: Any):
        self.rows = [row for part in parts for row in part.rows]
        width = max(part.mask.shape[1] for part in parts)
        mask = torch.cat([F.pad(part.mask, (width - part.mask.shape[1], 0)) for part in parts])
        used_columns = mask.any(0).nonzero()
        first = int(used_columns[0]) if len(used_columns) else width  # columns before it no row uses
        used = width - first
        capacity = used + max(r.request.params.max_new_tokens - len(r.tokens) for r in self.rows) + 1
        rooms = []
        for layer in zip(*(part.states for part in parts)):
            keys, values = layer[0]
            room = tuple(t.new_empty((len(self.rows), t.shape[1], capacity, t.shape[-1])) for t in (keys, values))
            start = 0
            for states, part in zip(layer, parts):
                rows, begin = slice(start, start + len(part.rows)), width - part.mask.shape[1] - first
                for into, source in zip(room, states):
                    into[rows, :, : max(begin, 0)].zero_()  # left pads: masked, but never uninitialized
                    into[rows, :, max(begin, 0):used].copy_(source[..., max(-begin, 0):, :])
                start += len(part.rows)
            rooms.append(room)
        self.mask = mask[:, first:]
        self.positions = torch.cat([part.positions for part in parts])
        self.cache = reserved_cache(config, rooms, used)

    @property
    def live(self) -> list[int]:
        return [i for i, row in enumerate(self.rows) if not row.done]

    def live_part(self) -> Part:
        """The rows still decoding, with their states, to regroup with new rows."""
        keep = self.live
        index = torch.tensor(keep, device=self.mask.device)
        states = [(layer.keys[index], layer.values[index]) for layer in self.cache.layers]
        return Part([self.rows[i] for i in keep], states, self.mask[index], self.positions[index])

    def step(self, model: Any, adapter_kwargs: dict[str, Any], drafts: list[list[int]]) -> torch.Tensor:
        """Feed every row its pending token, then its draft (shorter drafts padded, their pads never
        kept); the logits after each fed token [rows, fed, vocab]. `keep` must follow."""
        self.fed = 1 + max(map(len, drafts))
        fed = [[row.pending, *draft] + [row.pending] * (self.fed - 1 - len(draft))
               for row, draft in zip(self.rows, drafts)]
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), self.fed))], dim=1)
        tokens = torch.tensor(fed, device=self.mask.device)
        positions = self.positions[:, None] + torch.arange(self.fed, device=self.mask.device)
        output = forward_with_cache(model, tokens, self.mask, positions, self.cache, **adapter_kwargs)
        return output.logits.float()

    def keep(self, kept: list[int]) -> None:
        """After a step, each row's number of fed tokens whose states stay: the columns of draft
        tokens it did not keep are masked for good, and its positions move on by what it kept."""
        kept_tensor = torch.tensor(kept, device=self.mask.device)
        columns = torch.arange(self.fed, device=self.mask.device)
        self.mask[:, -self.fed:] = (columns[None] < kept_tensor[:, None]).to(self.mask.dtype)
        self.positions = self.positions + kept_tensor
