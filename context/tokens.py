"""Count tokens the way the model will see them, so context budgets hold on the real prompt.

A whitespace count falls well short of a BPE tokenizer's count, which is how "budgeted"
contexts overflow a small model's window; it is only the fallback when no tokenizer is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

TokenCounter = Callable[[str], int]


def count_whitespace_tokens(text: str) -> int:
    """The fallback count: whitespace-separated words."""
    return len(text.split())


def token_counter(tokenizer: Any = None) -> TokenCounter:
    """A function counting tokens with `tokenizer`: an HF tokenizer, any object with `encode`,
    or a path / hub id to load with `AutoTokenizer`; whitespace words when None."""
    if tokenizer is None:
        return count_whitespace_tokens
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    encode = tokenizer.encode
    try:  # HF tokenizers would add BOS/EOS per call; other encoders take no such keyword
        encode("probe", add_special_tokens=False)
    except TypeError:
        return lambda text: len(encode(text))
    return lambda text: len(encode(text, add_special_tokens=False))
