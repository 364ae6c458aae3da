"""Token-level constraints that make a field's value parse: choices, integers, decimals, lists of numbers.

A constraint sees the tokens a row has generated so far and names the tokens allowed next.
Each row of a batch applies its own (ax/inference/rows.py), so batching never changes which
values are reachable.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

_DIGITS = set("0123456789")


class TokenTables:
    """Per-tokenizer lookups, computed once: each token's text, and which tokens look numeric.

    A constraint is made for every row that decodes a number field, so each vocabulary scan is kept
    rather than repeated for every row."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self._scans: dict[tuple, Any] = {}

    @cached_property
    def texts(self) -> list[str]:
        return [self.tokenizer.decode([i]) for i in range(len(self.tokenizer))]

    def numeric_ids(self, charset: str, need_digit: bool) -> torch.Tensor:
        key = ("numeric", charset, need_digit)
        if key not in self._scans:
            allowed = set(charset)
            self._scans[key] = torch.tensor([i for i, text in enumerate(self.texts) if text and set(text) <= allowed
                                             and (not need_digit or set(text) & _DIGITS)], dtype=torch.long)
        return self._scans[key]

    def list_ids(self, integer: bool) -> tuple[torch.Tensor, torch.Tensor, frozenset[int]]:
        """For a bracketed list of numbers: the tokens that open it, those allowed inside (the closing
        "]" at most once, at the end), and those holding a "]"."""
        key = ("list", integer)
        if key not in self._scans:
            inner = set("0123456789-, " if integer else "0123456789.-, ") | {"]"}
            texts = self.texts
            self._scans[key] = (
                torch.tensor([i for i, t in enumerate(texts) if t.strip() == "["], dtype=torch.long),
                torch.tensor([i for i, t in enumerate(texts) if t and set(t) <= inner and "]" not in t.rstrip("]")
                              and t.count("]") <= 1], dtype=torch.long),
                frozenset(i for i, t in enumerate(texts) if "]" in t))
        return self._scans[key]

    @cached_property
    def newline_ids(self) -> torch.Tensor:
        return torch.tensor([i for i, t in enumerate(self.texts) if t and t.strip(" ") == "\n"], dtype=torch.long)


class Constraint:
    """Allowed next tokens given the tokens generated so far (None = no restriction)."""

    def allowed(self, generated: list[int]) -> torch.Tensor | None:
        raise NotImplementedError


class ChoiceConstraint(Constraint):
    """The value is exactly one of the options: decoding walks a trie of their token sequences."""

    def __init__(self, tables: TokenTables, options: list[str]):
        self.eos_id = tables.eos_id
        self.sequences = [tuple(tables.tokenizer.encode(o, add_special_tokens=False)) for o in options]

    def allowed(self, generated: list[int]) -> torch.Tensor:
        prefix, n = tuple(generated), len(generated)
        nxt = {seq[n] for seq in self.sequences if len(seq) > n and seq[:n] == prefix}
        if prefix in self.sequences:
            nxt.add(self.eos_id)
        return torch.tensor(sorted(nxt), dtype=torch.long)


class NumberConstraint(Constraint):
    """The value is a number: the first token carries a digit, later ones are numeric or end the value.

    Thousands separators are allowed after the first digit: reports write "4,310 units", and a
    model that may not copy the comma stops at "4" (clean_value removes them again).
    """

    def __init__(self, tables: TokenTables, integer: bool):
        charset = "0123456789-," if integer else "0123456789.-,"
        self.first = tables.numeric_ids(charset.replace(",", ""), need_digit=True)
        self.rest = torch.cat([tables.numeric_ids(charset, need_digit=False), tables.newline_ids,
                               torch.tensor([tables.eos_id])])

    def allowed(self, generated: list[int]) -> torch.Tensor:
        return self.first if not generated else self.rest


class NumberListConstraint(Constraint):
    """The value is a bracketed list of numbers ("[120, 35.5]"): it opens with "[", holds only
    numeric characters, commas and spaces, and ends once "]" is written.

    Free-decoded, a 135M model writes a `list[float]` field as anything but a list of the
    table's numbers (DSPy's "{cells}" placeholder, prose, code); held to this shape it can only
    choose which numbers to copy.
    """

    def __init__(self, tables: TokenTables, integer: bool):
        self.first, self.inner, self.closes = tables.list_ids(integer)
        self.eos = torch.tensor([tables.eos_id])

    def allowed(self, generated: list[int]) -> torch.Tensor:
        if not generated:
            return self.first
        # Only the last token can hold the "]": after one, nothing but the end is allowed.
        return self.eos if len(generated) > 1 and generated[-1] in self.closes else self.inner
