"""LoRA pairs of a classification domain are balanced across its label, and the adapter records it.

Issue 23: on a skewed domain an adapter trained on the raw pairs learned the label prior (always
the majority label) and nothing more.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import dspy
import pytest

from ax.adapters.dataset import TrainingPair, balance_labels, completion_label, label_balance, split_dev
from ax.client.prompting import completion_text
from ax.optimizers.lora_step import AdapterRef, LoraSettings, class_label, collect_pairs, train_into_client
from ax.optimizers.manifest import Artifacts
from ax.programs.domain import Domain
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field
from ax.programs.registry import register_domain

TINY_LORA = dict(max_steps=1, per_device_batch_size=2, gradient_accumulation_steps=1, dev_fraction=0.0, r=4,
                 lora_alpha=8, warmup_ratio=0.0, save_steps=100, logging_steps=1)


class Spam(dspy.Signature):
    """Say whether the message is spam."""

    context: str = context_field()
    message: str = dspy.InputField()
    verdict: Literal["ham", "spam"] = dspy.OutputField()


class Filter(PredictProgram):
    signature = Spam


def skewed_domain(name: str = "skewed", task: str = "classification") -> Domain:
    """Ninety ham messages to ten spam ones."""
    data = [dspy.Example(message=f"Message {i}: lunch at noon?", verdict="ham") for i in range(90)]
    data += [dspy.Example(message=f"Message {i}: you won a prize!", verdict="spam") for i in range(90, 100)]
    return Domain(name=name, program=Filter, metric=label_metric("verdict"), data=data, task=task)


def verdicts(pairs: list[TrainingPair]) -> Counter:
    return Counter(completion_label(pair.completion, "verdict") for pair in pairs)


@pytest.fixture
def tiny_lm(tiny_client):
    return tiny_client.lm()


def collect(lm, domain: Domain, **settings):
    examples = [e.with_inputs("message") for e in domain.examples()]
    return collect_pairs(Filter(), examples, lm=lm, metric=domain.metric, name=domain.name, domain=domain,
                         settings=LoraSettings(data="labels", **settings))[0]


def test_a_completion_gives_its_label_value():
    completion = completion_text([("verdict", "spam"), ("note", "a prize\n\nand more")])
    assert completion_label(completion, "verdict") == "spam"
    assert completion_label(completion, "note") == "a prize\n\nand more"
    assert completion_label(completion, "missing") is None


def test_ninety_ten_pairs_come_out_balanced_and_every_pair_is_kept(tiny_lm):
    domain = skewed_domain()
    assert verdicts(collect(tiny_lm, domain, balance_labels=False)) == {"ham": 90, "spam": 10}
    pairs = collect(tiny_lm, domain)
    counts = verdicts(pairs)
    assert abs(counts["ham"] - counts["spam"]) <= 1 and counts["ham"] == 90
    assert set(pairs) == set(collect(tiny_lm, domain, balance_labels=False))  # oversampled, nothing dropped
    spam_copies = Counter(p for p in pairs if completion_label(p.completion, "verdict") == "spam")
    assert set(spam_copies.values()) == {9}  # each rare pair repeated equally often
    assert label_balance(pairs, "verdict").model_dump() == {
        "field": "verdict", "before": {"ham": 90, "spam": 10}, "after": {"ham": 90, "spam": 90}}


def test_uneven_ratios_balance_within_one_and_deterministically():
    pairs = [TrainingPair(prompt=f"p{i}", completion=completion_text([("verdict", label)]))
             for i, label in enumerate(["a"] * 7 + ["b"] * 3 + ["c"] * 2)]
    pairs.append(TrainingPair(prompt="other predictor", completion=completion_text([("answer", "x")])))
    balanced = balance_labels(pairs, "verdict")
    assert verdicts(balanced) == {"a": 7, "b": 7, "c": 7, None: 1}  # a pair without the label is kept once
    assert balanced == balance_labels(pairs, "verdict")


def test_balancing_is_off_when_asked_and_for_other_tasks(tiny_lm):
    unbalanced = collect(tiny_lm, skewed_domain(), balance_labels=False)
    assert len(unbalanced) == len(set(unbalanced)) == 100
    assert collect(tiny_lm, skewed_domain(task="extraction")) == unbalanced
    assert class_label(skewed_domain(task="extraction")) is None and class_label("no-such-domain") is None


def test_a_registered_domain_is_balanced_by_name(tiny_lm):
    domain = register_domain(skewed_domain("skewed-registered"), replace=True)
    examples = [e.with_inputs("message") for e in domain.examples()]
    pairs, _ = collect_pairs(Filter(), examples, lm=tiny_lm, metric=domain.metric, name=domain.name,
                             settings=LoraSettings(data="labels"))
    assert verdicts(pairs) == {"ham": 90, "spam": 90}


def test_copies_of_a_pair_never_straddle_train_and_dev():
    pairs = [TrainingPair(prompt=f"p{i}", completion=completion_text([("verdict", "ham")])) for i in range(18)]
    pairs += [TrainingPair(prompt=f"s{i}", completion=completion_text([("verdict", "spam")])) for i in range(2)]
    balanced = balance_labels(pairs, "verdict")
    train, dev = split_dev(balanced, 0.25, seed=0)
    assert dev and not set(train) & set(dev) and len(train) + len(dev) == len(balanced)
    assert split_dev(pairs, 0.25, seed=0) == split_dev(list(pairs), 0.25, seed=0)


def test_the_adapter_and_the_configuration_manifest_record_the_balance(tiny_lm, tmp_path):
    domain = skewed_domain()
    pairs = collect(tiny_lm, domain)[::6]  # a few pairs of each label keep training short
    config = LoraSettings(overrides=TINY_LORA).training_config(domain.name, 0)
    ref, _ = train_into_client(tiny_lm, pairs, config, name="skewed-lora", target=tmp_path / "skewed-lora",
                               domain=domain, training_data="labels")
    assert ref.label_balance == label_balance(pairs, "verdict") and ref.label_balance.after["spam"] > 0
    saved = Artifacts(program_file=tmp_path / "program.json", adapter=ref).model_dump_json()
    assert Artifacts.model_validate_json(saved).adapter.label_balance == ref.label_balance
    unlabelled = AdapterRef.model_validate({**ref.model_dump(), "label_balance": None})
    assert unlabelled.label_balance is None  # extraction domains and older manifests carry none


def test_both_skips_the_runs_whose_pairs_the_labels_already_hold(tiny_lm):
    domain = skewed_domain()
    examples = [e.with_inputs("message") for e in domain.examples()[85:95]]

    def pairs(data: str, task_domain: Domain = domain):
        return collect_pairs(Filter(), examples, lm=tiny_lm, metric=domain.metric, name=task_domain.name,
                             domain=task_domain, settings=LoraSettings(data=data, balance_labels=False))

    labels, _ = pairs("labels")
    traces, runs = pairs("traces")
    assert runs == len(examples) and traces and set(traces) <= set(labels)  # an accepted run answered its gold label
    both, runs = pairs("both")
    assert runs == 0 and both == labels
    # Not for a task without a closed label set: a run may answer otherwise and be accepted.
    assert pairs("both", skewed_domain(task="extraction"))[1] == len(examples)
