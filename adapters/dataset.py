"""Training text for an adapter: the exact prompt and completion of inference, loss on the completion only.

DSPy examples and program traces become (prompt, completion) pairs through
`ax.client.prompting.training_pair`, the function the LM client's own format is built from, so
an adapter is trained on the token sequence it will see and produce when serving. Tokens of the
prompt and of padding get label -100; the completion ends with the tokenizer's EOS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from ax.client.prompting import FIELD_SEPARATOR, field_header, training_pair
from ax.errors import AxError
from ax.programs.domain import Domain
from ax.programs.modules import CONTEXT

log = logging.getLogger(__name__)
IGNORE_INDEX = -100  # label value that torch's cross-entropy skips


class TrainingPair(BaseModel):
    """One training example as text: what the model is given and what it should answer."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    completion: str


def _pair(tokenizer: Any, signature: Any, inputs: dict[str, Any], outputs: dict[str, Any],
          demos: Sequence[Any]) -> TrainingPair:
    prompt, completion = training_pair(tokenizer, signature, inputs, outputs, list(demos))
    return TrainingPair(prompt=prompt, completion=completion)


def pairs_from_examples(tokenizer: Any, signature: Any, examples: Iterable[Any],
                        demos: Sequence[Any] = ()) -> list[TrainingPair]:
    """Pairs from DSPy examples of one signature (demos: the few-shot examples the program's prompt holds)."""
    pairs = []
    for index, example in enumerate(examples):
        missing = [name for name in signature.output_fields if example.get(name) is None]
        if missing:
            raise AxError(f"Training example {index} has no value for output field(s) {missing}: {example}")
        inputs = {name: example.get(name) for name in signature.input_fields}
        outputs = {name: example.get(name) for name in signature.output_fields}
        pairs.append(_pair(tokenizer, signature, inputs, outputs, demos))
    return pairs


def pairs_from_trace(tokenizer: Any, trace: Iterable[tuple[Any, dict[str, Any], Any]]) -> list[TrainingPair]:
    """Pairs from a program's successful calls: (signature or predictor, inputs, outputs) triples.

    DSPy's own trace entries are (predictor, inputs, prediction); a predictor's demos are part of
    the prompt it sent, so they are part of the training prompt too.
    """
    pairs = []
    for caller, inputs, outputs in trace:
        signature = caller if hasattr(caller, "output_fields") else caller.signature
        values = {name: outputs[name] for name in signature.output_fields}
        pairs.append(_pair(tokenizer, signature, dict(inputs), values, getattr(caller, "demos", None) or ()))
    return pairs


def data_hash(pairs: Sequence[TrainingPair]) -> str:
    """Content hash of the training text, recorded in the adapter's manifest."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps([pair.prompt, pair.completion]).encode())
    return digest.hexdigest()[:16]


def split_dev(pairs: Sequence[TrainingPair], fraction: float,
              seed: int) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Hold out a reproducible random `fraction` of the distinct pairs for eval loss (none if too few).

    Copies of one pair (label balancing repeats a rare label's pairs) all land on one side, so eval
    loss is never measured on a pair the adapter trained on.
    """
    distinct = list(dict.fromkeys(pairs))
    count = int(len(distinct) * fraction)
    if count == 0 or count == len(distinct):
        return list(pairs), []
    order = list(range(len(distinct)))
    random.Random(seed).shuffle(order)
    held = {distinct[i] for i in order[:count]}
    return [p for p in pairs if p not in held], [p for p in pairs if p in held]


class LabelBalance(BaseModel):
    """How many training pairs answered each value of a classification label, before and after balancing."""

    field: str
    before: dict[str, int]
    after: dict[str, int]


def completion_label(completion: str, field: str) -> str | None:
    """The value a training completion gives `field`, or None when it has no such field."""
    header = field_header(field)
    start = completion.find(header)
    if start < 0:
        return None
    # A value runs to the separator before the next marker (another field or the completed marker).
    return completion[start + len(header):].split(FIELD_SEPARATOR + "[[ ## ", 1)[0].strip()


def label_counts(pairs: Iterable[TrainingPair], field: str) -> dict[str, int]:
    labels = (completion_label(pair.completion, field) for pair in pairs)
    return dict(sorted(Counter(label for label in labels if label is not None).items()))


def balance_labels(pairs: Sequence[TrainingPair], field: str) -> list[TrainingPair]:
    """Every label of `field` repeated up to the most frequent one's count; pairs without the field kept once.

    Rare labels are oversampled rather than common ones cut: a domain has tens of training
    examples, and a subset the size of the rarest label would throw most of them away. Each pair
    of a label is repeated equally often (one more for a seeded sample), so no one pair dominates.
    """
    groups: dict[str, list[TrainingPair]] = {}
    for pair in pairs:
        label = completion_label(pair.completion, field)
        if label is not None:
            groups.setdefault(label, []).append(pair)
    target = max((len(group) for group in groups.values()), default=0)
    rng = random.Random(data_hash(pairs))  # the same pairs always balance the same way
    balanced = list(pairs)
    for label in sorted(groups):
        group = groups[label]
        extra = target - len(group)
        balanced += group * (extra // len(group)) + rng.sample(group, extra % len(group))
    return balanced


def label_balance(pairs: Sequence[TrainingPair], field: str) -> LabelBalance | None:
    """The label counts of the distinct pairs and of all of them, copies included; None if none has `field`.

    Training pairs are distinct until `balance_labels` repeats some, so this is its before and after.
    """
    before = label_counts(dict.fromkeys(pairs), field)
    return LabelBalance(field=field, before=before, after=label_counts(pairs, field)) if before else None


def encode_pair(tokenizer: Any, pair: TrainingPair) -> dict[str, list[int]]:
    """input_ids and labels for one pair: the prompt's labels are -100, the completion's are its ids, then EOS.

    The whole text is tokenized at once, as the client tokenizes prompt plus prefilled markers;
    where a token straddles the prompt/completion boundary it counts as completion.
    """
    if tokenizer.eos_token_id is None:
        raise AxError("The tokenizer has no EOS token; training needs one to end completions.")
    prompt_ids = tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(pair.prompt + pair.completion, add_special_tokens=False)["input_ids"]
    shared = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids)))
    ids = ids + [tokenizer.eos_token_id]
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * shared + ids[shared:]}


@dataclass
class EncodedData:
    """Tokenized examples ready for the collator, and how many were too long to keep."""

    examples: list[dict[str, list[int]]] = field(default_factory=list)
    dropped: int = 0

    @property
    def tokens(self) -> int:
        return sum(len(e["input_ids"]) for e in self.examples)


def encode_pairs(tokenizer: Any, pairs: Sequence[TrainingPair], max_seq_length: int) -> EncodedData:
    """Tokenize every pair; drop (and count) those longer than max_seq_length.

    Truncating would train on a prompt the model never sees at inference, so long examples are
    left out instead and the count is logged and reported.
    """
    data = EncodedData()
    for pair in pairs:
        encoded = encode_pair(tokenizer, pair)
        if len(encoded["input_ids"]) > max_seq_length:
            data.dropped += 1
        else:
            data.examples.append(encoded)
    if data.dropped:
        log.warning("Dropped %d of %d examples longer than max_seq_length=%d tokens.",
                    data.dropped, len(pairs), max_seq_length)
    return data


def labelled_predictors(program: Any, example: Any) -> list[tuple[str, Any]]:
    """The program's (name, predictor)s that `example` labels: it holds every output and every input but `context`.

    An input another step produces (a retrieved passage, a tool's observation) counts only when the
    example holds its gold value under that input's name; filled in empty instead, it would give a
    prompt the predictor never sees at inference, so such a predictor learns from traces.
    """
    return [(name, predictor) for name, predictor in program.named_predictors()
            if all(field in example for field in predictor.signature.output_fields)
            and all(field in example for field in predictor.signature.input_fields if field != CONTEXT)]


def predictor_label_pairs(tokenizer: Any, predictors: Sequence[tuple[str, Any]],
                          examples: Sequence[Any]) -> dict[str, list[TrainingPair]]:
    """Each named predictor's pairs from labelled examples; inputs an example lacks (the playbook
    `context`) are given empty, as an unoptimized program sends them."""
    out = {}
    for name, predictor in predictors:
        fields = predictor.signature.input_fields
        filled = [e.copy(**{field: "" for field in fields if field not in e}) for e in examples]
        out[name] = pairs_from_examples(tokenizer, predictor.signature, filled, predictor.demos)
    return out


def domain_pairs(tokenizer: Any, domain: Domain) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, dev) pairs from an `ax.programs` Domain's fixed splits, for each predictor its examples label.

    See `labelled_predictors`; the others (e.g. a step reading what an earlier one produced) need
    traces, see `pairs_from_trace`.
    """
    splits = domain.splits()
    labelled = labelled_predictors(domain.program(), splits.train[0])
    if not labelled:
        raise AxError(f"Domain {domain.name!r}: no predictor has all its inputs and outputs in its examples; "
                      "train from traces of successful runs instead (pairs_from_trace).")

    def pairs(examples: list[Any]) -> list[TrainingPair]:
        return [pair for group in predictor_label_pairs(tokenizer, labelled, examples).values() for pair in group]

    return pairs(splits.train), pairs(splits.dev)
