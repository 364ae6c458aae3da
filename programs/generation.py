"""Toolkit the twelve domain generators share: varied wording, stable ids, leak-free splits.

Every built-in data set is produced by code, not downloaded, so that anyone can rebuild it
bit for bit from a seed and read exactly why each gold answer is right (`explanation`).

Built-in splits test generalization, not recall: each generator draws an item from template
families (phrasings, entity lists, number ranges) reserved for the split it is drawn for
(`for_split`), so every test item is phrased in a way training never saw. Each item names its
`family`, so a test can check that no family serves two splits.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import dspy

from ax.errors import AxError

DIFFICULTIES = ("easy", "medium", "hard")
UNRATED = "unrated"  # difficulty of examples that came without one (users' data)
DEFAULT_ITEMS = 360  # per built-in domain: 216 train / 72 dev / 72 test
# Fields examples carry besides their inputs and gold labels; metrics never score them.
META_FIELDS = ("id", "difficulty", "explanation", "family")
SPLIT_NAMES = ("train", "dev", "test")
# 60/20/20 as a repeating pattern (the order in which split_examples deals those shares): cycling
# through it gives exact proportions overall and proportional shares inside every stratum.
_SPLIT_PATTERN = ("train", "dev", "train", "test", "train")

_ALTERNATIVES = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")

# A generator gets the seeded rng, the difficulty and the split it must produce, and returns the
# input fields, the gold fields, an `explanation` naming the cue that decides the answer and the
# `family` (template) it drew from, using only `for_split(pool, split)` of each pool.
ItemMaker = Callable[[random.Random, str, str], dict]
T = TypeVar("T")


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


def for_split(pool: Sequence[T], split: str) -> list[T]:
    """The members of `pool` (phrasings, entities, number ranges) reserved for `split`.

    Members are dealt by position through the 60/20/20 pattern, so a pool of at least four gives
    every split its own, and no member serves two splits.
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"split {split!r}: expected one of {SPLIT_NAMES}")
    share = [member for index, member in enumerate(pool) if _SPLIT_PATTERN[index % len(_SPLIT_PATTERN)] == split]
    if not share:
        raise ValueError(f"a pool of {len(pool)} leaves split {split!r} nothing; give it at least 4 members")
    return share


def split_sizes(n: int) -> dict[str, int]:
    """60/20/20 of `n` items, the remainder to train."""
    dev = test = n // 5
    return {"train": n - dev - test, "dev": dev, "test": test}


def generate_splits(domain: str, make_item: ItemMaker, *, inputs: Sequence[str], n: int = DEFAULT_ITEMS,
                    seed: int = 0) -> Splits:
    """Draw `n` items split 60/20/20, each split's items from its own template families.

    Within a split difficulties cycle (so any prefix mixes them) and inputs are distinct across
    all splits. Ids `domain-000000` follow draw order (train, dev, then test); the rng is seeded
    from the domain name and seed, so the same seed always gives the same items.
    """
    rng = random.Random(f"{domain}/{seed}")
    seen: set[tuple] = set()
    parts: dict[str, list[dspy.Example]] = {}
    drawn = 0
    for split, size in split_sizes(n).items():
        examples: list[dspy.Example] = []
        for _attempt in range(50 * size):
            if len(examples) == size:
                break
            difficulty = DIFFICULTIES[len(examples) % len(DIFFICULTIES)]
            item = make_item(rng, difficulty, split)
            key = input_key(item, inputs)
            if key in seen:
                continue
            seen.add(key)
            example = dspy.Example(id=f"{domain}-{drawn:06d}", difficulty=difficulty, **item)
            examples.append(example.with_inputs(*inputs))
            drawn += 1
        else:
            raise RuntimeError(f"the {domain} generator produced only {len(examples)} distinct {split} items; "
                               "it needs more templates or slot fillers")
        parts[split] = examples
    return Splits(**parts)


def input_key(item, inputs: Iterable[str]) -> tuple:
    """Inputs compared the way a reader would: case and spacing do not make a new text.

    Fields are taken in sorted order, so the key (which feeds the split hash) does not depend
    on the order in which a caller or a file lists them.
    """
    return tuple(" ".join(str(item[name]).split()).casefold() for name in sorted(inputs))


def split_examples(examples: Sequence[dspy.Example], *, stratify_by: str | None = None,
                   dev: float = 0.2, test: float = 0.2) -> Splits:
    """Deterministic split (60/20/20 by default) in which identical inputs always land in the same split.

    Items are grouped by input text, grouped into strata (difficulty, then the `stratify_by`
    value, usually the gold label), ordered by a hash of the text inside each stratum, and
    dealt out in turn to the split furthest below its share (`dev` and `test` are shares of the
    input groups; train takes the rest). Which split an item lands in depends on neither file
    order nor Python's hash seed.
    """
    if not (0 < dev and 0 < test and dev + test < 1):
        raise AxError(f"dev and test shares must be above 0 and sum below 1, got dev={dev:g}, test={test:g}")
    groups: dict[tuple, list[dspy.Example]] = {}
    for example in examples:
        groups.setdefault(input_key(example, example.inputs().keys()), []).append(example)

    def order(key: tuple) -> tuple:
        first = groups[key][0]
        stratum = (str(first.get("difficulty", "")), str(first.get(stratify_by, "")) if stratify_by else "")
        return stratum, hashlib.sha256(repr(key).encode()).hexdigest()

    # Exact fractions: float shares drift by one item at ties over hundreds of groups.
    shares = {"train": 1 - Fraction(str(dev)) - Fraction(str(test)), "dev": Fraction(str(dev)), "test": Fraction(str(test))}
    dealt = dict.fromkeys(shares, 0)
    home: dict[tuple, str] = {}
    for position, key in enumerate(sorted(groups, key=order)):
        # The split furthest below its share of the groups dealt so far; ties go train, dev, test.
        split = max(shares, key=lambda s: shares[s] * (position + 1) - dealt[s])
        dealt[split] += 1
        home[key] = split
    # Each split keeps the original order, so any prefix (dev[:50]) mixes labels and difficulties.
    parts: dict[str, list[dspy.Example]] = {"train": [], "dev": [], "test": []}
    for example in examples:
        parts[home[input_key(example, example.inputs().keys())]].append(example)
    return Splits(**parts)
