"""Training text equals inference text; loss only on completion tokens; batches padded or packed correctly."""

from __future__ import annotations

from typing import Literal

import dspy
import pytest
import torch

from ax.adapters.collate import PackingCollator, PadCollator, pack_rows
from ax.adapters.dataset import (
    IGNORE_INDEX, TrainingPair, data_hash, encode_pair, encode_pairs, pairs_from_examples, pairs_from_trace, split_dev,
)
from ax.client.generation import Generation
from ax.client.prompting import field_header, render_chat
from ax.errors import AxError


class Review(dspy.Signature):
    """Classify the clause and name the obligated party."""

    clause: str = dspy.InputField()
    clause_type: Literal["payment", "warranty"] = dspy.OutputField()
    party: str = dspy.OutputField()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


class RecordingBackend:
    """The client's backend contract, answering each field with the gold value and keeping every prompt."""

    base_fingerprint = answer_fingerprint = "tiny"

    def __init__(self, tokenizer, answers: dict[str, str]):
        self.tokenizer, self.answers, self.prompts = tokenizer, answers, []

    def render(self, messages):
        return render_chat(self.tokenizer, messages)

    def generate(self, request):
        self.prompts.append(request.prompt)
        field = request.prompt.rsplit("[[ ## ", 1)[1].split(" ## ]]")[0]
        return Generation(text=self.answers[field], prompt_tokens=1, completion_tokens=1)

    def adapter_fingerprint(self, adapter):
        return "base"

    def adapters(self):
        return []


def test_training_text_is_exactly_what_the_client_sends_and_writes(tokenizer):
    """Run a DSPy program through the real client; each prompt it sends must be the training text so far."""
    from ax.client import Client

    demo = dspy.Example(clause="Buyer shall pay within 30 days.", clause_type="payment", party="Buyer")
    gold = dspy.Example(clause="Seller warrants the goods.", clause_type="warranty", party="Seller").with_inputs("clause")
    (pair,) = pairs_from_examples(tokenizer, Review, [gold], demos=[demo])

    backend = RecordingBackend(tokenizer, {"clause_type": "warranty", "party": "Seller"})
    program = dspy.Predict(Review)
    program.demos = [demo]
    with dspy.context(lm=Client(backend, model_name="tiny", cache=False).lm()):
        prediction = program(clause=gold.clause)

    assert (prediction.clause_type, prediction.party) == ("warranty", "Seller")
    first, second = backend.prompts
    assert first == pair.prompt + field_header("clause_type")
    assert second.startswith(pair.prompt)
    assert pair.completion.startswith(second[len(pair.prompt):] + "Seller")
    assert pair.completion.endswith("[[ ## completed ## ]]")


def test_traces_give_the_same_pairs_as_examples(tokenizer):
    predictor = dspy.Predict(Review)
    inputs = {"clause": "Seller warrants the goods."}
    outputs = dspy.Prediction(clause_type="warranty", party="Seller")
    from_trace = pairs_from_trace(tokenizer, [(predictor, inputs, outputs)])
    from_examples = pairs_from_examples(tokenizer, Review, [dspy.Example(**inputs, **outputs.toDict())])
    assert from_trace == from_examples
    assert pairs_from_trace(tokenizer, [(Review, inputs, outputs)]) == from_examples


def test_missing_label_is_named(tokenizer):
    with pytest.raises(AxError, match=r"example 0 .*\['party'\]"):
        pairs_from_examples(tokenizer, Review, [dspy.Example(clause="x", clause_type="payment")])


def test_loss_only_on_completion_tokens_and_eos(tokenizer):
    pair = TrainingPair(prompt=render_chat(tokenizer, [{"role": "user", "content": "What is 2?"}]),
                        completion="[[ ## answer ## ]]\nyes\n\n[[ ## completed ## ]]")
    encoded = encode_pair(tokenizer, pair)
    prompt_ids = tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert encoded["input_ids"][:n] == prompt_ids
    assert encoded["labels"][:n] == [IGNORE_INDEX] * n
    assert encoded["labels"][n:] == encoded["input_ids"][n:]
    assert encoded["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded["input_ids"][n:-1]) == pair.completion


def test_too_long_examples_are_dropped_and_counted(tokenizer):
    short = TrainingPair(prompt="a", completion="b")
    long = TrainingPair(prompt="word " * 200, completion="b")
    data = encode_pairs(tokenizer, [short, long], max_seq_length=50)
    assert len(data.examples) == 1 and data.dropped == 1
    assert data.tokens == len(data.examples[0]["input_ids"])


def test_dev_split_is_reproducible_and_disjoint():
    pairs = [TrainingPair(prompt=str(i), completion="x") for i in range(20)]
    train, dev = split_dev(pairs, 0.25, seed=3)
    assert len(dev) == 5 and len(train) == 15 and not set(train) & set(dev)
    assert split_dev(pairs, 0.25, seed=3) == (train, dev)
    assert split_dev(pairs[:2], 0.25, seed=3) == (pairs[:2], [])
    assert data_hash(pairs) != data_hash(pairs[::-1])


FEATURES = [{"input_ids": list(range(5, 5 + n)), "labels": [IGNORE_INDEX] * 2 + list(range(7, 5 + n))}
            for n in (7, 3, 5, 9)]


def test_pad_collator_pads_to_the_longest_in_the_batch_only():
    batch = PadCollator(pad_token_id=0)(FEATURES[:3])
    assert batch["input_ids"].shape == (3, 7)
    assert batch["num_real_tokens"] == 15 and "attention_mask" not in batch
    assert (batch["labels"][1, 3:] == IGNORE_INDEX).all()
    assert PadCollator(pad_token_id=0, pad_to_multiple_of=8)(FEATURES[:3])["input_ids"].shape == (3, 8)


def test_right_padded_rows_give_the_logits_of_each_example_alone(tiny_model_dir):
    """With no attention mask the causal mask alone keeps each row's padding (after its tokens) out of them."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = PadCollator(pad_token_id=0)(FEATURES)
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], use_cache=False).logits
        for row, feature in enumerate(FEATURES):
            ids = feature["input_ids"]
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(padded[row, :len(ids)], alone, atol=1e-4, rtol=1e-4)


def test_pack_rows_fills_rows_first_fit_decreasing():
    assert pack_rows([7, 3, 5, 9], capacity=12) == [[3, 1], [0, 2]]
    assert pack_rows([7, 3, 5, 9], capacity=9) == [[3], [0], [2, 1]]


def test_packed_rows_give_the_logits_of_separate_examples(tiny_model_dir):
    """Attention must stop at each packed example's boundary (position_ids restart, no attention mask)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = PackingCollator(pad_token_id=0)(FEATURES)
    assert batch["input_ids"].shape == (3, 9) and batch["num_real_tokens"] == 24
    labels = batch.pop("labels")
    batch.pop("num_real_tokens")
    batch.pop("loss_positions")
    with torch.no_grad():
        packed = model(**batch, use_cache=False).logits
        for row, members in enumerate(pack_rows([7, 3, 5, 9], 9)):
            start = 0
            for index in members:
                ids = FEATURES[index]["input_ids"]
                alone = model(input_ids=torch.tensor([ids])).logits[0]
                torch.testing.assert_close(packed[row, start:start + len(ids)], alone, atol=1e-4, rtol=1e-4)
                # No example is predicted from the one before it; its own labels are kept.
                assert labels[row, start] == IGNORE_INDEX
                assert labels[row, start + 1:start + len(ids)].tolist() == FEATURES[index]["labels"][1:]
                start += len(ids)
