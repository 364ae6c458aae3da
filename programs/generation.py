"""Toolkit the twelve domain generators share: varied wording, stable ids, leak-free splits.

Every built-in data set is produced by code, not downloaded, so that anyone can rebuild it
bit for bit from a seed and read exactly why each gold answer is right (`explanation`).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dspy

DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_ITEMS = 360  # per built-in domain: 216 train / 72 dev / 72 test
# Fields every example carries besides its inputs and gold labels; metrics never score them.
META_FIELDS = ("id", "difficulty", "explanation")
# 60/20/20 as a repeating pattern: walking items in a fixed order and cycling through it gives
# exact proportions overall and proportional shares inside every stratum.
_SPLIT_PATTERN = ("train", "dev", "train", "test", "train")

_ALTERNATIVES = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")

# A generator gets the seeded rng and the difficulty it must produce, and returns the input
# fields, the gold fields and an `explanation` naming the cue that decides the answer.
ItemMaker = Callable[[random.Random, str], dict]


def render(rng: random.Random, template: str, **slots) -> str:
    """Choose one wording for each `[a|b|c]` group, then fill `{slot}`s.

    Alternatives are resolved before slots so that slot values may contain any characters.
    """
    text = _ALTERNATIVES.sub(lambda match: rng.choice(match.group(1).split("|")), template)
    text = text.format(**slots)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r" ([,.;:])", r"\1", text).strip()


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def money(amount: float) -> str:
    """$1,234,500 style."""
    return f"${amount:,.0f}"


def money_short(amount: float) -> str:
    """$1.2 million / $850 thousand style: forces a unit conversion on the reader."""
    if amount >= 1_000_000:
        return f"${amount / 1_000_000:g} million"
    return f"${amount / 1_000:g} thousand"


@dataclass(frozen=True)
class Splits:
    """Fixed train/dev/test partitions of one domain's examples."""

    train: list[dspy.Example]
    dev: list[dspy.Example]
    test: list[dspy.Example]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}

    def all(self) -> list[dspy.Example]:
        return [*self.train, *self.dev, *self.test]


def generate_examples(domain: str, make_item: ItemMaker, *, inputs: Sequence[str], n: int,
                      seed: int = 0) -> list[dspy.Example]:
    """Draw `n` items with distinct inputs, difficulties in equal thirds, ids `domain-000000`.

    Ids follow draw order and the rng is seeded from the domain name and seed, so the same
    seed always gives the same ids, texts and answers.
    """
    rng = random.Random(f"{domain}/{seed}")
    examples: list[dspy.Example] = []
    seen: set[tuple] = set()
    for _attempt in range(50 * n):
        if len(examples) == n:
            break
        difficulty = DIFFICULTIES[len(examples) % len(DIFFICULTIES)]
        item = make_item(rng, difficulty)
        key = input_key(item, inputs)
        if key in seen:
            continue
        seen.add(key)
        example = dspy.Example(id=f"{domain}-{len(examples):06d}", difficulty=difficulty, **item)
        examples.append(example.with_inputs(*inputs))
    else:
        raise RuntimeError(f"the {domain} generator produced only {len(examples)} distinct items; "
                           "it needs more templates or slot fillers")
    return examples


def input_key(item, inputs: Iterable[str]) -> tuple:
    """Inputs compared the way a reader would: case and spacing do not make a new text.

    Fields are taken in sorted order, so the key (which feeds the split hash) does not depend
    on the order in which a caller or a file lists them.
    """
    return tuple(" ".join(str(item[name]).split()).casefold() for name in sorted(inputs))


def split_examples(examples: Sequence[dspy.Example], *, stratify_by: str | None = None) -> Splits:
    """Deterministic 60/20/20 split in which identical inputs always land in the same split.

    Items are grouped by input text, grouped into strata (difficulty, then the `stratify_by`
    value, usually the gold label), ordered by a hash of the text inside each stratum, and
    dealt out by `_SPLIT_PATTERN`. Which split an item lands in depends on neither file order
    nor Python's hash seed.
    """
    groups: dict[tuple, list[dspy.Example]] = {}
    for example in examples:
        groups.setdefault(input_key(example, example.inputs().keys()), []).append(example)

    def order(key: tuple) -> tuple:
        first = groups[key][0]
        stratum = (str(first.get("difficulty", "")), str(first.get(stratify_by, "")) if stratify_by else "")
        return stratum, hashlib.sha256(repr(key).encode()).hexdigest()

    home: dict[tuple, str] = {key: _SPLIT_PATTERN[position % len(_SPLIT_PATTERN)]
                              for position, key in enumerate(sorted(groups, key=order))}
    # Each split keeps the original order, so any prefix (dev[:50]) mixes labels and difficulties.
    parts: dict[str, list[dspy.Example]] = {"train": [], "dev": [], "test": []}
    for example in examples:
        parts[home[input_key(example, example.inputs().keys())]].append(example)
    return Splits(**parts)
