"""Prompt-lookup drafts: tokens a greedy row may be about to write, guessed from its own context.

Small models copy from their prompts a great deal (SmolLM2 opens many answers by repeating
the question), and a decoding step on a CPU costs about the same for one token a row as for a
few: the weights are read once either way. So a row whose last tokens occurred earlier in its
prompt or answer is fed, with its pending token, the tokens that followed that occurrence; the
step's logits then check each of them, and every one that greedy decoding would have chosen
is kept (transformers' `prompt_lookup_num_tokens` and vLLM's n-gram speculation do the same
for one sequence). Greedy output is unchanged by it: a draft token is kept only where the
row's own argmax equals it.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

# A one-token match ("the", a newline) finds some earlier occurrence nearly always and is wrong
# nearly as often; two tokens already pin down a copied span.
MIN_NGRAM = 2
MAX_NGRAM = 4


def lookup_draft(context: Sequence[int], max_tokens: int) -> list[int]:
    """Up to `max_tokens` tokens that followed an earlier occurrence of the context's last n tokens,
    for the longest n (MAX_NGRAM down to MIN_NGRAM) that occurred before; [] if none did.

    The latest occurrence with `max_tokens` tokens after it wins, the nearest copy being the
    likeliest one; where none has that many (a short loop the row is caught in: its latest
    occurrence ends where the context does), the one followed by the most tokens.
    """
    if max_tokens <= 0:
        return []
    end = len(context)
    for n in range(min(MAX_NGRAM, end - 1), MIN_NGRAM - 1, -1):
        tail = list(context[end - n:])
        best: list[int] = []
        for start in range(end - n - 1, -1, -1):
            if context[start] == tail[0] and list(context[start:start + n]) == tail:
                follow = list(context[start + n:start + n + max_tokens])
                if len(follow) == max_tokens:
                    return follow
                best = follow if len(follow) > len(best) else best
        if best:
            return best
    return []


def expected_tokens(draft_lengths: Sequence[int], width: int, acceptance: float) -> float:
    """Tokens a step of `width` fed columns is expected to yield: each row its own next token,
    plus each draft token within the width with the chance that it and all before it are kept."""
    total = 0.0
    for length in draft_lengths:
        depth = min(length, width - 1)
        total += 1 + sum(acceptance ** d for d in range(1, depth + 1))
    return total


class StepCosts:
    """Seconds a decoding step takes as a line in the tokens it feeds, fit to the latest steps. On
    a CPU of few cores every fed token adds compute to a step; where a step is bound by reading weights or
    launching kernels, extra tokens cost little. So the fit of this machine's own steps, not a
    constant, decides how many draft tokens a step is fed."""

    def __init__(self, window: int = 64):
        self._steps: deque[tuple[int, float]] = deque(maxlen=window)

    def record(self, tokens: int, seconds: float) -> None:
        self._steps.append((tokens, seconds))

    def line(self) -> tuple[float, float] | None:
        """(seconds a step, seconds a fed token), or None before steps of two sizes were seen."""
        if len({tokens for tokens, _ in self._steps}) < 2:
            return None
        xs = [tokens for tokens, _ in self._steps]
        ys = [seconds for _, seconds in self._steps]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
                 / sum((x - mean_x) ** 2 for x in xs))
        slope = max(slope, 0.0)
        return max(mean_y - slope * mean_x, 0.0), slope

    def best_width(self, draft_lengths: Sequence[int], acceptance: float, other_tokens: int = 0) -> int:
        """The width (1 + the draft tokens a row may be fed) with the most expected tokens a second,
        each row fed its pending token and its draft up to the width, and the step `other_tokens`
        more (joining rows' prompts)."""
        widest = 1 + max(draft_lengths, default=0)
        line = self.line()
        if line is None:
            return widest  # steps of several widths follow, and with them a fit
        fixed, per_token = line

        def fed(width: int) -> int:
            return other_tokens + sum(1 + min(length, width - 1) for length in draft_lengths)

        return max(range(1, widest + 1),
                   key=lambda width: expected_tokens(draft_lengths, width, acceptance)
                   / max(fixed + per_token * fed(width), 1e-9))
