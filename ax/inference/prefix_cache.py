"""Key/value states of shared prompt prefixes, so a program's system prompt is prefilled once.

Every DSPy call of one program starts with the same system message (field descriptions,
instructions, demos) and the opening of the user turn: most of the tokens of each prompt of
bench/client_throughput.py on SmolLM2. On a CPU, prefilling is compute and takes a large share
of a batch's time (`python bench/decode_cost.py`; README, Measured), so, as vLLM's automatic prefix
caching and SGLang's radix cache do, the states of a shared prefix are computed once per adapter
and reused by every later prompt that starts with it.

A prompt is served from the entry it shares the most leading tokens with, not only from one that
is wholly a prefix of it: each group of joining rows caches the prefix its rows have in common,
which often runs a few tokens into the user turn ("[[ ## text ## ]]\nThe"), and a later group whose
text starts otherwise still shares the whole system prompt with it. A state depends only on the
tokens up to its own, so an entry's first columns are the states of those tokens alone.

Entries are keyed by the adapter's identity as well as the token ids: LoRA on q/k/v (or on any
layer below the last) changes the keys and values, so one adapter's states are never another's.
Only the backend's worker thread uses a cache, so it takes no lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Sequence

import torch

KV = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per layer: (keys, values), batch 1

# Below this, the forward pass saved is smaller than the extra entry's memory and bookkeeping
# (the chat template's first line alone is a handful of tokens every prompt shares).
MIN_PREFIX_TOKENS = 16


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    """A small LRU of prefix states, keyed by (adapter identity, prefix token ids)."""

    def __init__(self, max_entries: int = 16, recent_prompts: int = 16):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, tuple[int, ...]], KV] = OrderedDict()
        self._recent: deque[tuple[str, tuple[int, ...]]] = deque(maxlen=recent_prompts)
        self.computed_tokens = 0  # prefix tokens run through the model, for tests and benchmarks
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def shared_lengths(self, rows: list[list[int]], identities: list[str]) -> list[int]:
        """How many leading tokens of each row to serve from the cache (0: none).

        A row shares the longest prefix it has in common with another row of its adapter (its
        ``identities`` entry) joining with it or with one of the prompts seen lately. Rows of
        several programs join together when an evaluation runs them item by item: each shares its
        own program's system prompt, not the few template tokens common to all of them; and the
        same prompt under another adapter (one program with and without LoRA) shares no states.
        Calls that arrive one at a time (a single thread, a row taking a finished row's place in a
        running batch, the fields of one answer) share their system prompt with the calls before.
        """
        lengths = []
        for i, (row, identity) in enumerate(zip(rows, identities)):
            others = [*zip(identities[:i] + identities[i + 1:], rows[:i] + rows[i + 1:]), *self._recent]
            length = max((common_prefix_length(row, other) for key, other in others if key == identity), default=0)
            # Each row keeps a token of its own, so the model's forward in generate has logits to decode from.
            length = min(length, len(row) - 1)
            lengths.append(length if length >= MIN_PREFIX_TOKENS else 0)
        self._recent.extend((identity, tuple(row)) for identity, row in zip(identities, rows))
        return lengths

    def cached_length(self, identity: str, prefix: list[int]) -> int:
        """How many leading tokens of `prefix` `cached` would serve, without serving them."""
        return self._longest(identity, prefix)[1]

    def cached(self, identity: str, prefix: list[int]) -> tuple[int, KV | None]:
        """The most leading tokens of `prefix` that an entry under `identity` holds (at least
        MIN_PREFIX_TOKENS): their number and states, or (0, None)."""
        key, best = self._longest(identity, prefix)
        if key is None:
            return 0, None
        self._entries.move_to_end(key)
        self.reused_tokens += best
        states = self._entries[key]
        return best, states if best == len(key[1]) else tuple((k[:, :, :best], v[:, :, :best]) for k, v in states)

    def _longest(self, identity: str, prefix: list[int]) -> tuple[tuple[str, tuple[int, ...]] | None, int]:
        key, best = None, 0
        for entry in self._entries:
            if entry[0] == identity:
                length = common_prefix_length(entry[1], prefix)
                if length > best:
                    key, best = entry, length
        return (key, best) if key is not None and best >= MIN_PREFIX_TOKENS else (None, 0)

    def put(self, identity: str, prefix: list[int], states: KV, computed: int) -> None:
        """Keep the states of `prefix`, of which `computed` tokens were run to get them."""
        self.computed_tokens += computed
        self._entries[(identity, tuple(prefix))] = states
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
