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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from ax.errors import AxError

log = logging.getLogger(__name__)
IGNORE_INDEX = -100  # label value that torch's cross-entropy skips


class TrainingPair(BaseModel):
    """One training example as text: what the model is given and what it should answer."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    completion: str


def _pair(tokenizer: Any, signature: Any, inputs: dict[str, Any], outputs: dict[str, Any],
          demos: Sequence[Any]) -> TrainingPair:
    from ax.client.prompting import training_pair

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


def split_dev(pairs: Sequence[TrainingPair], fraction: float, seed: int) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Hold out a reproducible random `fraction` of the pairs for eval loss (none if too few)."""
    count = int(len(pairs) * fraction)
    if count == 0 or count == len(pairs):
        return list(pairs), []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


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


def domain_pairs(tokenizer: Any, domain: Any) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, dev) pairs from an `ax.programs` Domain's fixed splits, for each predictor its labels cover.

    A predictor is trained from labelled examples when every one of its output fields is a label;
    the others (e.g. intermediate extraction steps) need traces, see `pairs_from_trace`. Inputs the
    examples lack (the playbook `context`) are given empty, as an unoptimized program sends them.
    """
    program = domain.program()
    splits = domain.splits()
    labelled = [p for p in program.predictors()
                if all(name in splits.train[0] for name in p.signature.output_fields)]
    if not labelled:
        raise AxError(f"Domain {domain.name!r}: no predictor's outputs are all labelled in its examples; "
                      "train from traces of successful runs instead (pairs_from_trace).")

    def pairs(examples: list[Any]) -> list[TrainingPair]:
        out = []
        for predictor in labelled:
            fields = predictor.signature.input_fields
            filled = [e.copy(**{name: "" for name in fields if name not in e}) for e in examples]
            out += pairs_from_examples(tokenizer, predictor.signature, filled, predictor.demos)
        return out

    return pairs(splits.train), pairs(splits.dev)
