"""The agent-shaped built-ins support_agent and claim_check: data, retrieval, step metrics, programs end to end."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from typing import NamedTuple

import dspy
import pytest

from ax.adapters.dataset import labelled_predictors
from rule_lm import rule_lm
from ax.programs import claim_check, get_domain, step_scores, support_agent
from ax.programs.generation import SPLIT_NAMES, input_key
from ax.programs.modules import CONTEXT

PLAYBOOK = "[str-00001] helpful=1 harmful=0 :: read the whole message first"


class Case(NamedTuple):
    """What the tests need to know of one agent domain."""

    predictors: tuple[str, str]
    passage: str  # the input that carries the retrieved passage, which examples carry gold
    steps: dict[str, str]  # step name -> the prediction field a wrong value in which fails that step
    retrieve_gold: Callable[[dspy.Example], str]  # retrieval's answer when the first predictor is right
    gold: Callable[[dspy.Example], dict]  # the program's output when every step is right
    follow: Callable[[dspy.Example, dict], dict]  # a right model's answer to a call, given its inputs


def _cited_id(passage: str) -> str:
    return passage.split(":", 1)[0]


CASES = {
    "support_agent": Case(
        ("classify", "answer"), "policy",
        {"classify": "intent", "retrieve": "retrieved_id", "answer": "resolution"},
        lambda e: support_agent.POLICY_INDEX.top(support_agent.policy_query(e.intent, e.message)).id,
        lambda e: {"intent": e.intent, "retrieved_id": e.policy_id, "policy_id": e.policy_id,
                   "resolution": e.resolution},
        lambda e, inputs: {"intent": e.intent, "policy_id": _cited_id(inputs.get("policy", "")),
                           "resolution": e.resolution}),
    "claim_check": Case(
        ("extract", "verdict"), "evidence",
        {"extract": "claim_sentence", "retrieve": "retrieved_id", "verdict": "verdict"},
        lambda e: claim_check.EVIDENCE_INDEX.top(e.claim).id,
        lambda e: {"claim_sentence": e.claim_sentence, "claim": e.claim, "retrieved_id": e.evidence_id,
                   "verdict": e.verdict, "evidence_id": e.evidence_id},
        lambda e, inputs: {"claim_sentence": e.claim_sentence, "verdict": e.verdict,
                           "evidence_id": _cited_id(inputs.get("evidence", ""))}),
}
NAMES = list(CASES)


def _choices(program: dspy.Module, field: str) -> tuple[str, ...]:
    """The Literal values of the output `field` of whichever predictor writes it."""
    return next(typing.get_args(p.signature.output_fields[field].annotation)
                for p in program.predictors() if field in p.signature.output_fields)


def _step_lines(feedback: str) -> dict[str, str]:
    """Step name -> its part of a step metric's feedback."""
    return dict(re.findall(r"Step (\w+): (.*?)(?= Step \w+: |$)", feedback))


# --- data ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_splits_inputs_and_gold_passages(name):
    case, domain = CASES[name], get_domain(name)
    splits = domain.splits()
    assert splits.sizes() == {"train": 144, "dev": 48, "test": 48}
    assert domain.task == "classification" and CONTEXT not in domain.inputs()
    program = domain.program()
    for example in splits.all():
        assert set(example.inputs().keys()) == set(domain.inputs())
        assert all(example[field] not in (None, "") for field in domain.labels())
        assert example.explanation and example.family
        assert len(example[domain.inputs()[0]].split()) < 60
        # The gold passage, cited as the program cites what it retrieved.
        assert _cited_id(example[case.passage]) == case.gold(example)["retrieved_id"]
    # Gold passages under the predictor's input name: label-based pairs teacher-force both predictors.
    assert [n for n, _ in labelled_predictors(program, splits.train[0])] == list(case.predictors)


@pytest.mark.parametrize("name", NAMES)
def test_no_family_or_input_serves_two_splits(name):
    splits = get_domain(name).splits()
    parts = {split: getattr(splits, split) for split in SPLIT_NAMES}
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not {e.family for e in parts[first]} & {e.family for e in parts[second]}
        keys = [{input_key(e, e.inputs().keys()) for e in parts[split]} for split in (first, second)]
        assert not keys[0] & keys[1]


@pytest.mark.parametrize("name", NAMES)
def test_every_label_occurs_in_every_split(name):
    domain = get_domain(name)
    program = domain.program()
    checked = [domain.labels()[0]] + (["resolution"] if name == "support_agent" else [])
    for part in (domain.splits().train, domain.splits().dev, domain.splits().test):
        for field in checked:
            assert {e[field] for e in part} == set(_choices(program, field)), field


@pytest.mark.parametrize("name", NAMES)
def test_retrieval_from_the_gold_intermediate_finds_the_gold_passage(name):
    case, examples = CASES[name], get_domain(name).examples()
    hits = sum(case.retrieve_gold(e) == case.gold(e)["retrieved_id"] for e in examples)
    assert hits >= 0.9 * len(examples)


def test_support_retrieval_needs_the_intent_and_the_product():
    """The intent alone cannot pick the policy (one per product category), nor the message alone."""
    examples = get_domain("support_agent").examples()
    index, query = support_agent.POLICY_INDEX, support_agent.policy_query
    assert sum(index.top(query(e.intent, "")).id == e.policy_id for e in examples) < 0.5 * len(examples)
    assert sum(index.top(query("", e.message)).id == e.policy_id for e in examples) < 0.9 * len(examples)


# --- the step metric ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_metric_feedback_names_the_wrong_step(name):
    case, domain = CASES[name], get_domain(name)
    example = domain.splits().dev[0]
    gold = case.gold(example)
    assert domain.metric(example, dspy.Prediction(**gold)).score == 1.0
    for step, field in case.steps.items():
        wrong = dspy.Prediction(**{**gold, field: f"not {gold[field]}"})
        result = domain.metric(example, wrong)
        lines = _step_lines(result.feedback)
        assert result.score < 1.0 and list(lines) == list(case.steps)
        assert f"Wrong `{field}`" in lines[step]
        assert all("Wrong" not in lines[other] for other in case.steps if other != step)
        scores = step_scores(domain.metric, example, wrong.toDict())
        assert scores[step] < 1.0 and all(scores[other] == 1.0 for other in case.steps if other != step)
    # Asked about one predictor, GEPA reads only the steps it decides: retrieval belongs to the first.
    wrong = dspy.Prediction(**{**gold, "retrieved_id": "not " + gold["retrieved_id"]})
    first, second = case.predictors
    assert "Step retrieve: Wrong" in domain.metric(example, wrong, None, first, None).feedback
    assert "Step retrieve" not in domain.metric(example, wrong, None, second, None).feedback


@pytest.mark.parametrize("name", NAMES)
def test_metric_never_raises_on_garbage(name):
    domain = get_domain(name)
    example = domain.examples()[0]
    for prediction in (None, {}, "text", dspy.Prediction(), dspy.Prediction(**dict.fromkeys(domain.labels(), [1]))):
        result = domain.metric(example, prediction)
        assert result.score == 0.0 and result.feedback.strip()


# --- the programs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_predictors_are_named_typed_and_take_the_playbook(name):
    program = get_domain(name).program()
    assert [n for n, _ in program.named_predictors()] == list(CASES[name].predictors)
    for predictor in program.predictors():
        assert CONTEXT in predictor.signature.input_fields
        assert len(predictor.signature.instructions.split()) >= 12  # a task statement GEPA can evolve


@pytest.mark.parametrize("name", NAMES)
def test_scripted_model_drives_both_predictors_and_retrieval(name):
    """A model right at every call scores 1 on every step; one wrong first step sends retrieval astray."""
    case, domain = CASES[name], get_domain(name)
    example = domain.splits().test[0]
    calls: list[dict] = []

    def right(instructions: str, inputs: dict) -> dict:
        calls.append(inputs)
        return case.follow(example, inputs)

    with dspy.context(lm=rule_lm(right)):
        prediction = domain.program()(context=PLAYBOOK, **example.inputs())
    assert prediction.toDict() == case.gold(example)
    assert domain.metric(example, prediction).score == 1.0
    assert len(calls) == 2 and all(PLAYBOOK in call[CONTEXT] for call in calls)
    assert _cited_id(calls[1][case.passage]) == prediction.retrieved_id  # the answer read what retrieval found

    first_field = case.steps[case.predictors[0]]
    lost = next(e[first_field] for e in domain.examples() if e[first_field] != example[first_field]
                and case.gold(e)["retrieved_id"] != case.gold(example)["retrieved_id"])
    with dspy.context(lm=rule_lm(lambda instructions, inputs: {**case.follow(example, inputs), first_field: lost})):
        astray = domain.program()(**example.inputs())
    scores = step_scores(domain.metric, example, astray.toDict())
    assert scores[case.predictors[0]] == 0.0 and scores["retrieve"] == 0.0
    assert scores[case.predictors[1]] < 1.0  # it cites the passage it was given, the wrong one


@pytest.fixture(scope="module")
def long_tiny_client(tmp_path_factory):
    """The tiny model with room for 4096 positions: its 512-token vocabulary spells the answer
    predictors' lists of passage ids nearly letter by letter, past its usual 2048."""
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model
    from tiny_model import make_tiny_model

    path = make_tiny_model(tmp_path_factory.mktemp("tiny-long"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    backend = LocalBackend(load_model(str(path)))
    # Short free text (the claim) keeps the run fast; constrained fields decode whole either way.
    yield Client(backend, model_name="tiny", cache=False, max_field_tokens=8)
    backend.close()


@pytest.mark.parametrize("name", NAMES)
def test_every_output_field_decodes_with_the_real_client(name, long_tiny_client):
    """A random-init model through ax's client: every field parses into its type on three items."""
    domain = get_domain(name)
    program = domain.program()
    first, second = program.predictors()
    with dspy.context(lm=long_tiny_client.lm()):
        for example in domain.splits().dev[:3]:
            prediction = program(**example.inputs())
            for predictor in (first, second):
                for field, spec in predictor.signature.output_fields.items():
                    if typing.get_origin(spec.annotation) is typing.Literal:
                        assert prediction[field] in typing.get_args(spec.annotation), (field, prediction[field])
                    else:
                        assert isinstance(prediction[field], spec.annotation), (field, prediction[field])
            assert isinstance(domain.metric(example, prediction).score, float)
