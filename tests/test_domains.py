"""The twelve built-in domains, the registry, the metric toolkit and user-composed domains."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter
import typing
from typing import Literal

import dspy
import pytest
from dspy.utils.dummies import DummyLM

from ax.errors import AxError
from ax.programs import (
    BUILTIN_DOMAINS, Domain, PredictProgram, get_domain, label_metric, list_domains, mean_metric,
    numeric_metric, register_domain, text_metric,
)
from ax.programs import registry
from ax.programs.floors import NEAR_COPY, domain_stats, majority_floor, nearest
from ax.programs.generation import DIFFICULTIES, SPLIT_NAMES, for_split, generate_splits, input_key, render
from ax.programs.modules import CONTEXT, context_field

DOMAINS = list(BUILTIN_DOMAINS)
GARBAGE = [None, {}, "plain string", 42, dspy.Prediction()]
GARBAGE_VALUES = [None, "", "   ", [1, 2], {"a": 1}, object(), float("nan"), float("inf"), True, b"bytes", "n/a"]


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))


def sample_value(annotation):
    """A value of the annotated type, as a model following the signature would give it."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)[-1]
    if typing.get_origin(annotation) is list:
        return [4.0, 2.0]
    return {int: 3, float: 2.5}.get(annotation, "some text")


def dummy_answers(program: dspy.Module) -> list[dict]:
    return [{name: sample_value(field.annotation) for name, field in predictor.signature.output_fields.items()}
            for predictor in program.predictors()]


def wrong_value(value):
    if isinstance(value, (int, float)):
        return value * 3 + 17
    return f"not {value}"


# --- the registry -------------------------------------------------------------------------------------------

def test_twelve_builtin_domains_are_listed():
    assert list_domains()[:12] == DOMAINS
    assert set(DOMAINS) == {"financial", "legal", "healthcare", "marketing", "manufacturing", "real_estate", "education",
                            "data_analytics", "operations", "customer_service", "research", "specialized"}


def test_unknown_domain_names_the_known_ones():
    with pytest.raises(AxError) as error:
        get_domain("astrology")
    assert "astrology" in str(error.value) and "financial" in str(error.value) and "specialized" in str(error.value)


def test_register_refuses_a_taken_name_unless_replacing(clean_registry):
    mine = Domain(name="healthcare", program=get_domain("healthcare").program, metric=label_metric("urgency"),
                  data=get_domain("healthcare").examples()[:10])
    with pytest.raises(AxError, match="already registered"):
        register_domain(mine)
    assert register_domain(mine, replace=True) is get_domain("healthcare")
    with pytest.raises(AxError, match="takes a Domain"):
        register_domain("healthcare")  # type: ignore[arg-type]


def test_task_kinds_mix_classification_extraction_and_computation():
    kinds = {name: get_domain(name).task for name in DOMAINS}
    assert set(kinds.values()) == {"classification", "extraction", "computation"}


# --- data of every built-in domain ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", DOMAINS)
def test_items_ids_difficulty_and_inputs(name):
    domain = get_domain(name)
    examples = domain.examples()
    assert len(examples) >= 300
    ids = [example.id for example in examples]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"{name}-\d{{6}}", example_id) for example_id in ids)
    assert {example.difficulty for example in examples} == set(DIFFICULTIES)
    for example in examples:
        assert set(example.inputs().keys()) == set(domain.inputs())
        assert CONTEXT not in example.inputs().keys()
        assert "id" not in example.inputs().keys() and "difficulty" not in example.inputs().keys()
        assert all(example[field] not in (None, "") for field in domain.labels())
        assert example.explanation


@pytest.mark.parametrize("name", DOMAINS)
def test_splits_are_disjoint_complete_and_balanced(name):
    splits = get_domain(name).splits()
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    assert splits.sizes() == {"train": 216, "dev": 72, "test": 72}
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not {e.id for e in parts[first]} & {e.id for e in parts[second]}
        keys = lambda split: {input_key(e, e.inputs().keys()) for e in parts[split]}  # noqa: E731
        assert not keys(first) & keys(second), f"identical input in {first} and {second}"
    assert sorted(e.id for e in splits.all()) == sorted(e.id for e in get_domain(name).examples())
    for part in parts.values():  # stratified, and mixed in order: even a short prefix has every difficulty
        assert {e.difficulty for e in part[:15]} == set(DIFFICULTIES)


@pytest.mark.parametrize("name", DOMAINS)
def test_same_seed_same_data_other_seed_other_data(name):
    domain = get_domain(name)
    again = domain.data()
    snapshot = lambda examples: [e.toDict() for e in examples]  # noqa: E731
    assert snapshot(again.all()) == snapshot(domain.examples())
    assert [e.id for e in again.test] == [e.id for e in domain.splits().test]
    module = __import__(f"ax.programs.{name}", fromlist=["make_item"])
    other = generate_splits(name, module.make_item, inputs=domain.inputs(), n=30, seed=1)
    assert snapshot(other.all()) != snapshot(domain.examples()[:30])


@pytest.mark.parametrize("name", DOMAINS)
def test_no_template_family_serves_two_splits(name):
    splits = get_domain(name).splits()
    families = {split: {e.family for e in getattr(splits, split)} for split in SPLIT_NAMES}
    assert all(families.values())
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not families[first] & families[second], f"{first} and {second} share families"


@pytest.mark.parametrize("name", [n for n in DOMAINS if get_domain(n).task == "classification"])
def test_test_items_are_phrased_unlike_training_items(name):
    """What a public sentiment dataset measures: median overlap 0.26, 10% of test items at 0.7 or more."""
    stats = domain_stats(get_domain(name))
    assert stats.median_overlap <= 0.5, stats
    assert stats.near_copies <= 0.10, stats


def test_for_split_deals_every_pool_member_to_one_split():
    pool = list(range(12))
    shares = {split: for_split(pool, split) for split in SPLIT_NAMES}
    assert sorted(sum(shares.values(), [])) == pool
    assert [len(shares[split]) for split in SPLIT_NAMES] == [7, 3, 2]
    with pytest.raises(ValueError, match="at least 4"):
        for_split(["a", "b", "c"], "test")


def test_floors_and_nearest_neighbours():
    assert majority_floor(["a", "b", "a", "c", "a"]) == ("a", 0.6)
    overlaps = nearest(["the cat sat", "a dog ran far"], ["the cat sat down", "dogs ran", "a dog ran far"])
    assert overlaps == [(0.75, 0), (1.0, 2)]
    assert NEAR_COPY == 0.7


def test_splits_do_not_depend_on_the_hash_seed():
    code = "from ax.programs import get_domain; print([e.id for e in get_domain('research').splits().test])"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    assert runs.pop().strip() == str([e.id for e in get_domain("research").splits().test])


@pytest.mark.parametrize("name", [n for n in DOMAINS if get_domain(n).task == "classification"])
def test_labels_are_roughly_balanced(name):
    domain = get_domain(name)
    counts = Counter(example[domain.labels()[0]] for example in domain.examples())
    assert min(counts.values()) >= 0.4 * max(counts.values()), counts


# --- metrics on every built-in domain -------------------------------------------------------------------------

@pytest.mark.parametrize("name", DOMAINS)
def test_gold_scores_one_and_wrong_scores_less_with_feedback(name):
    domain = get_domain(name)
    for example in domain.examples():
        gold = dspy.Prediction(**{field: example[field] for field in domain.labels()})
        result = domain.metric(example, gold)
        assert result.score == 1.0, (example.id, result.feedback)
        assert isinstance(result.feedback, str) and result.feedback
        for field in domain.labels():
            wrong = dspy.Prediction(**{**gold.toDict(), field: wrong_value(example[field])})
            result = domain.metric(example, wrong, None, None, None)
            assert result.score < 1.0 and field in result.feedback and result.feedback.strip()


@pytest.mark.parametrize("name", DOMAINS)
def test_metric_never_raises_on_garbage(name):
    domain = get_domain(name)
    example = domain.examples()[0]
    predictions = GARBAGE + [dspy.Prediction(**{field: value for field in domain.labels()}) for value in GARBAGE_VALUES]
    for prediction in predictions:
        result = domain.metric(example, prediction)
        assert isinstance(result, dspy.Prediction)
        assert result.score == 0.0 and result.feedback.strip()


def test_wrong_label_feedback_names_expected_got_and_the_cue():
    domain = get_domain("healthcare")
    example = next(e for e in domain.examples() if e.urgency == "emergency")
    result = domain.metric(example, dspy.Prediction(urgency="routine"))
    assert "'emergency'" in result.feedback and "'routine'" in result.feedback
    assert example.explanation in result.feedback


def test_computation_feedback_points_at_the_extracted_figures():
    domain = get_domain("financial")
    example = domain.examples()[0]
    prediction = dspy.Prediction(numerator=1.0, denominator=example.denominator, ratio=12345.0)
    feedback = domain.metric(example, prediction).feedback
    assert "numerator expected" in feedback and "got 1.0" in feedback


# --- programs end to end under DummyLM ------------------------------------------------------------------------

@pytest.mark.parametrize("name", DOMAINS)
def test_program_runs_under_dummy_lm_and_sees_the_context(name):
    domain = get_domain(name)
    program = domain.program()
    example = domain.splits().dev[0]
    lm = DummyLM(dummy_answers(program) * 2)
    with dspy.context(lm=lm):
        plain = program(**example.inputs())
        playbook = "[str-00001] helpful=2 harmful=0 :: read the last sentence first"
        guided = program(context=playbook, **example.inputs())
    for prediction in (plain, guided):
        for field in domain.labels():
            assert prediction.get(field) is not None, field
        assert isinstance(domain.metric(example, prediction).score, float)
    prompt = " ".join(str(message["content"]) for message in lm.history[-1]["messages"])
    assert playbook in prompt


@pytest.mark.parametrize("name", DOMAINS)
def test_signatures_are_typed_and_take_context(name):
    program = get_domain(name).program()
    for predictor in program.predictors():
        signature = predictor.signature
        assert CONTEXT in signature.input_fields
        assert 1 <= len(signature.output_fields) <= 4
        for field in signature.output_fields.values():
            assert field.annotation is not None


# --- the metric toolkit ---------------------------------------------------------------------------------------

def test_label_metric_normalizes_case_spacing_and_punctuation():
    metric = label_metric("intent")
    gold = dspy.Example(intent="order_status")
    assert metric(gold, dspy.Prediction(intent="Order Status.")).score == 1.0
    assert metric(gold, {"intent": " 'order-status' "}).score == 1.0
    assert metric(gold, dspy.Prediction(intent="refund")).score == 0.0


def test_numeric_metric_parses_money_and_respects_tolerance():
    metric = numeric_metric("value", rel_tol=0.01)
    gold = dspy.Example(value=1200)
    assert metric(gold, {"value": "$1,200"}).score == 1.0
    assert metric(gold, {"value": 1210.0}).score == 1.0
    assert metric(gold, {"value": 1300}).score == 0.0
    assert "not a number" in metric(gold, {"value": "about twelve hundred"}).feedback


def test_text_metric_matches_up_to_spacing_and_case():
    metric = text_metric("prerequisite")
    assert metric(dspy.Example(prerequisite="MATH 101"), {"prerequisite": "math101"}).score == 1.0
    assert metric(dspy.Example(prerequisite="MATH 101"), {"prerequisite": "MATH 102"}).score == 0.0
    assert metric(dspy.Example(prerequisite="東京"), {"prerequisite": "大阪"}).score == 0.0  # non-Latin text is kept


def test_mean_metric_averages_and_explains_once():
    metric = mean_metric(label_metric("a"), text_metric("b"))
    gold = dspy.Example(a="x", b="Tenant", explanation="because of the cue")
    result = metric(gold, {"a": "x", "b": "Landlord"})
    assert result.score == 0.5
    assert result.feedback.count("because of the cue") == 1 and "'Landlord'" in result.feedback


def test_values_field_is_read_as_data_not_the_method():
    metric = numeric_metric("values")
    assert metric(dspy.Example(values=3), dspy.Prediction(values=3)).score == 1.0


# --- users' own domains ---------------------------------------------------------------------------------------

class RouteTicket(dspy.Signature):
    """Route a support ticket."""

    context: str = context_field()
    ticket: str = dspy.InputField()
    queue: Literal["billing", "tech"] = dspy.OutputField()


class TicketRouter(PredictProgram):
    signature = RouteTicket


def _tickets(n: int = 20) -> list[dspy.Example]:
    return [dspy.Example(ticket=f"ticket {i}: {'invoice' if i % 2 else 'crash'}", queue="billing" if i % 2 else "tech")
            for i in range(n)]


def test_a_user_domain_in_a_few_lines(clean_registry):
    domain = register_domain(Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data=_tickets()))
    assert get_domain("tickets") is domain and "tickets" in list_domains()
    assert domain.inputs() == ("ticket",) and domain.labels() == ("queue",)
    examples = domain.examples()
    assert [e.id for e in examples[:2]] == ["tickets-000000", "tickets-000001"]
    assert {e.difficulty for e in examples} == {"unrated"}
    assert sum(domain.splits().sizes().values()) == 20
    with dspy.context(lm=DummyLM([{"queue": "tech"}])):
        prediction = domain.program()(**examples[0].inputs())
    assert domain.metric(examples[0], prediction).score == 1.0


def test_user_domain_from_a_jsonl_path_infers_inputs_from_the_program(tmp_path):
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(f'{{"ticket": "t{i}", "queue": "{"tech" if i % 3 else "billing"}"}}\n' for i in range(15)))
    domain = Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data=path)
    assert domain.inputs() == ("ticket",) and domain.labels() == ("queue",)
    assert len(domain.examples()) == 15 and domain.examples()[0].id == "tickets-000000"


def test_domain_accepts_a_program_instance_and_hands_out_copies():
    instance = TicketRouter()
    domain = Domain(name="tickets", program=instance, metric=label_metric("queue"), data=_tickets())
    assert isinstance(domain.program(), TicketRouter) and domain.program() is not instance


def test_bad_domains_are_ax_errors():
    with pytest.raises(AxError, match="invalid domain"):
        Domain(name="Bad Name", program=TicketRouter, metric=label_metric("queue"), data=_tickets())
    with pytest.raises(AxError, match="data must be"):
        Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data=42)
    with pytest.raises(AxError, match="reserved|supplied by ax"):
        Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data=_tickets(),
               input_fields=("context",))
    domain = Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data=[dspy.Example(queue="tech")])
    with pytest.raises(AxError, match="lacks input"):
        domain.examples()


def test_render_picks_alternatives_then_fills_slots():
    import random

    texts = {render(random.Random(seed), "[Hi|Hello] {name} [a|b|c].", name="[x|y]") for seed in range(40)}
    assert all(text.split()[1] == "[x|y]" for text in texts)  # slot values are never parsed as alternatives
    assert {text.split()[0] for text in texts} == {"Hi", "Hello"}


def test_infinite_and_nan_ratios_score_zero():
    metric = get_domain("financial").metric
    example = get_domain("financial").examples()[0]
    assert metric(example, dspy.Prediction(ratio=math.nan)).score == 0.0


def test_educations_exclusion_rule_is_a_real_case():
    """A course the entry excludes makes the student not eligible, even with the prerequisite met."""
    examples = get_domain("education").examples()
    excluded = [e for e in examples if e.family.startswith("excluded")]
    assert len(excluded) >= 0.10 * len(examples)
    assert all(e.decision == "not eligible" and "excludes" in e.explanation for e in excluded)
    assert any("even though the prerequisite is met" in e.explanation for e in excluded)
