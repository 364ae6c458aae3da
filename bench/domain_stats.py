"""Per-domain data statistics, no model: item counts, splits, difficulty mix, label balance.

    .venv/bin/python bench/domain_stats.py [--root ax_domains]

"majority" is the accuracy of always answering the most common gold label (classification
only): the floor any model must beat. "words" is the mean input length, which bounds the
prompt a small model has to read.
"""

from __future__ import annotations

import argparse
from collections import Counter
from statistics import mean, median

from ax.programs import get_domain, list_domains

MAX_CATEGORIES = 12  # a field with more distinct values is shown as a range, not a count table


def balance(domain) -> str:
    """Counts of the first categorical field (gold first), else the gold values' range or spread."""
    examples = domain.examples()
    extras = [key for key in examples[0].keys() if key not in (*domain.inputs(), *domain.labels(), "id", "explanation")]
    for field in (*domain.labels(), *extras, *domain.inputs()):
        counts = Counter(str(example[field]) for example in examples)
        if 2 <= len(counts) <= MAX_CATEGORIES and field != "difficulty":
            return f"{field}: " + ", ".join(f"{value} {count}" for value, count in counts.most_common())
    field = domain.labels()[0]
    values = [example[field] for example in examples]
    if all(isinstance(value, (int, float)) for value in values):
        return f"{field}: min {min(values):g}, median {median(values):g}, max {max(values):g}"
    common = ", ".join(f"{value} {count}" for value, count in Counter(map(str, values)).most_common(3))
    return f"{field}: {len(set(map(str, values)))} distinct values; most common {common}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="directory of imported domains (default ./ax_domains)")
    args = parser.parse_args()
    header = f"{'domain':<17} {'task':<14} {'items':>5} {'train/dev/test':>14}  {'easy/med/hard':>13} {'words':>5} {'majority':>8}"
    print(header)
    print("-" * len(header))
    details = []
    for name in list_domains(root=args.root):
        domain = get_domain(name, root=args.root)
        examples = domain.examples()
        sizes = domain.splits().sizes()
        levels = Counter(example.difficulty for example in examples)
        mix = "/".join(str(levels.get(level, 0)) for level in ("easy", "medium", "hard"))
        words = mean(sum(len(str(example[field]).split()) for field in domain.inputs()) for example in examples)
        gold = Counter(str(example[domain.labels()[0]]) for example in examples)
        majority = f"{gold.most_common(1)[0][1] / len(examples):.0%}" if len(gold) <= MAX_CATEGORIES else "-"
        split_text = f"{sizes['train']}/{sizes['dev']}/{sizes['test']}"
        print(f"{name:<17} {domain.task:<14} {len(examples):>5} {split_text:>14}  {mix:>13} {words:>5.0f} {majority:>8}")
        details.append(f"{name:<17} {balance(domain)}")
    print("\nlabel balance")
    print("\n".join(details))


if __name__ == "__main__":
    main()
