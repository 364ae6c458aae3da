"""The tool_agent domain: its tools, its data, a scripted ReAct run end to end, and ax's client on its fields."""

from __future__ import annotations

import json
import re

import dspy
import pytest

from ax.client.coercion import coerce_structured
from rule_lm import rule_lm
from ax.programs.generation import SPLIT_NAMES, input_key
from ax.programs.metrics import step_scores
from ax.programs.registry import get_domain
from ax.programs.tool_agent import CATALOGUE, MAX_STEPS, ToolAgent, calculator, find_part, lookup

QUESTION = dspy.Example(question="What do 7 units of bracket K-12 cost?", answer=24.5, lookup_item=["bracket K-12"],
                        explanation="7 x 3.5 = 24.5").with_inputs("question")


# --- tools ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, value", [
    ("7 * 3.5", "24.5"), ("(2 + 3) * 4 / 5", "4"), ("-3 + +2", "-1"), ("0.1 + 0.2", "0.3"), ("7 × $3.50", "24.5"),
    ("1,200 * 2", "2400"), ("129 - 14.2", "114.8"),
])
def test_calculator_does_arithmetic(expression, value):
    assert calculator(expression) == value


@pytest.mark.parametrize("expression", [
    "__import__('os').system('echo hi')", "open('/etc/passwd')", "2 ** 1000", "x + 1", "[1, 2]", "True + 1",
    "lambda: 1", "1 if 1 else 2", "'a' * 3", "7 // 2", "1; 2", "9" * 300,
])
def test_calculator_refuses_anything_but_arithmetic_as_text(expression):
    assert calculator(expression).startswith("error:")


def test_calculator_reports_division_by_zero():
    assert calculator("1 / (2 - 2)") == "error: division by zero"


@pytest.mark.parametrize("name", ["bracket K-12", "BRACKET k12", "K-12", "brackt K-12", "k-12 bracket", "bracket",
                                  "the bracket K-12 part", " Bracket  K 12 "])
def test_lookup_tolerates_case_spacing_order_and_small_misspellings(name):
    assert find_part(name) == CATALOGUE["bracket K-12"]
    assert lookup(name) == "bracket K-12: unit price $3.50, weight 0.45 kg, 120 in stock"


@pytest.mark.parametrize("name", ["bracket K-13", "widget", "", "sprocket K-12", "12"])
def test_lookup_of_an_unknown_item_says_so(name):
    assert lookup(name).startswith("unknown item")


def test_every_catalogue_item_is_found_by_its_name_and_code():
    assert len(CATALOGUE) == 30
    for name, part in CATALOGUE.items():
        assert find_part(name) == part and find_part(name.split(" ")[1]) == part


# --- data -----------------------------------------------------------------------------------------------------------

def test_splits_sizes_difficulties_and_gold():
    domain = get_domain("tool_agent")
    splits = domain.splits()
    assert splits.sizes() == {"train": 144, "dev": 48, "test": 48}
    assert domain.task == "computation" and domain.labels() == ("answer", "lookup_item")
    for example in splits.all():
        assert isinstance(example.answer, float) and example.explanation
        assert len(example.lookup_item) == (2 if example.difficulty == "hard" else 1)
        assert all(name in example.question for name in example.lookup_item)
    for part in (splits.train, splits.dev, splits.test):
        assert {e.difficulty for e in part[:6]} == {"easy", "medium", "hard"}


def test_no_family_item_or_question_serves_two_splits():
    splits = get_domain("tool_agent").splits()
    families = {split: {e.family for e in getattr(splits, split)} for split in SPLIT_NAMES}
    items = {split: {name for e in getattr(splits, split) for name in e.lookup_item} for split in SPLIT_NAMES}
    questions = {split: {input_key(e, ["question"]) for e in getattr(splits, split)} for split in SPLIT_NAMES}
    for first, second in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not families[first] & families[second]
        assert not items[first] & items[second]
        assert not questions[first] & questions[second]


def test_gold_answers_follow_from_the_catalogue():
    for example in get_domain("tool_agent").examples():
        numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", example.explanation.split(";")[-1])]
        assert numbers and abs(numbers[-1] - example.answer) < 1e-9, example.explanation


# --- the agent under a scripted LM ----------------------------------------------------------------------------------

def scripted_agent(item: str):
    """A rule LM that looks `item` up, multiplies its price by the question's quantity, finishes, then answers.

    The price comes from the lookup's observation and the answer from the calculator's, so the run
    only scores when real tool calls feed the trajectory.
    """

    def rule(instructions: str, inputs: dict[str, str]) -> dict[str, str]:
        observations = [value for key, value in inputs.items() if key.startswith("observation_")]
        if not observations:
            tool, args = "lookup", {"item": item}
        elif len(observations) == 1:
            price = re.search(r"\$(\d+\.\d+)", observations[0]).group(1)
            quantity = re.search(r"(\d+) units", inputs["question"]).group(1)
            tool, args = "calculator", {"expression": f"{quantity} * {price}"}
        else:
            tool, args = "finish", {}
        answer = observations[1] if len(observations) > 1 else "0"
        return {"next_thought": f"I call {tool}.", "next_tool_name": tool, "next_tool_args": json.dumps(args),
                "reasoning": "The calculator gave the total.", "answer": answer}

    return rule_lm(rule)


def test_the_agent_looks_up_calculates_finishes_and_scores_one():
    program = ToolAgent()
    assert [name for name, _ in program.named_predictors()] == ["agent.react", "agent.extract.predict"]
    with dspy.context(lm=scripted_agent("bracket k12")):
        prediction = program(**QUESTION.inputs())
    trajectory = prediction.trajectory
    assert [trajectory[f"tool_name_{i}"] for i in range(3)] == ["lookup", "calculator", "finish"]
    assert trajectory["observation_0"].startswith("bracket K-12: unit price $3.50")
    assert trajectory["tool_args_1"] == {"expression": "7 * 3.50"} and trajectory["observation_1"] == "24.5"
    assert prediction.answer == 24.5 and prediction.looked_up == ["bracket k12"]
    assert prediction.finished is True and prediction.steps == 3
    output = json.loads(json.dumps(prediction.toDict()))  # what the evaluator stores
    metric = get_domain("tool_agent").metric
    assert metric(QUESTION, prediction).score == 1.0
    assert step_scores(metric, QUESTION, output) == {"lookup": 1.0, "finish": 1.0, "answer": 1.0}


def test_a_wrong_lookup_is_blamed_on_the_lookup_step():
    with dspy.context(lm=scripted_agent("hinge H-3")):
        prediction = ToolAgent()(**QUESTION.inputs())
    metric = get_domain("tool_agent").metric
    result = metric(QUESTION, prediction)
    assert step_scores(metric, QUESTION, prediction) == {"lookup": 0.0, "finish": 1.0, "answer": 0.0}
    assert re.search(r"Step lookup: The agent looked up 'hinge H-3' but never 'bracket K-12'", result.feedback)
    assert "Step answer: Wrong `answer`: expected 24.5, got 8.75" in result.feedback
    # GEPA asking about the extract predictor hears only about the answer it decides.
    extract = metric(QUESTION, prediction, None, "agent.extract.predict", None).feedback
    assert extract.startswith("Step answer:") and "Step lookup" not in extract


def test_an_agent_that_never_finishes_fails_the_finish_step():
    def rule(instructions, inputs):
        return {"next_thought": "again", "next_tool_name": "lookup", "next_tool_args": '{"item": "K-12"}',
                "reasoning": "-", "answer": "3.5"}

    with dspy.context(lm=rule_lm(rule)):
        prediction = ToolAgent()(**QUESTION.inputs())
    assert prediction.steps == MAX_STEPS and prediction.finished is False
    feedback = get_domain("tool_agent").metric(QUESTION, prediction).feedback
    assert f"Step finish: The agent did not call finish within {MAX_STEPS} tool calls" in feedback


def test_the_metric_never_raises_on_garbage():
    metric = get_domain("tool_agent").metric
    for prediction in (dspy.Prediction(), {}, dspy.Prediction(answer="n/a", looked_up="x", finished="yes"),
                       {"looked_up": [None, 3], "finished": None, "answer": None}):
        result = metric(QUESTION, prediction)
        assert result.score == 0.0 and result.feedback.startswith("Step lookup:")


def test_a_lookup_without_an_item_is_told_the_argument_it_needs():
    feedback = get_domain("tool_agent").metric(QUESTION, dspy.Prediction(looked_up=[""], finished=True)).feedback
    assert "looked up (no item)" in feedback and 'next_tool_args like {"item": "bracket K-12"}' in feedback


# --- ax's client on every ReAct field -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ('{"item": "bracket K-12"}', {"item": "bracket K-12"}), ("{'item': 'K-12',}", {"item": "K-12"}),
    ("{next_tool_args}", {}), ("no json here", {}), ('["a list"]', {}),
])
def test_the_client_rebuilds_react_tool_arguments_as_a_dict(text, value):
    assert json.loads(coerce_structured("dict[str, Any]", text)) == value


@pytest.fixture(scope="module")
def long_tiny_lm(tmp_path_factory):
    """The tiny model with room for a ReAct prompt: its byte-level tokenizer spends several tokens a word."""
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model
    from tiny_model import make_tiny_model

    path = make_tiny_model(tmp_path_factory.mktemp("tiny-long"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8192}))
    backend = LocalBackend(load_model(str(path)))
    yield Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm()
    backend.close()


def test_the_client_decodes_every_react_field(long_tiny_lm):
    domain = get_domain("tool_agent")
    program = domain.program()
    with dspy.context(lm=long_tiny_lm):
        predictions = [program(**example.inputs()) for example in domain.splits().test[:3]]
    for example, prediction in zip(domain.splits().test, predictions):
        trajectory = prediction.trajectory
        turns = [key for key in trajectory if key.startswith("tool_name_")]
        assert turns and len(turns) == prediction.steps <= MAX_STEPS
        for turn in range(len(turns)):
            assert isinstance(trajectory[f"thought_{turn}"], str)
            assert trajectory[f"tool_name_{turn}"] in ("lookup", "calculator", "finish")
            assert isinstance(trajectory[f"tool_args_{turn}"], dict)
            assert isinstance(trajectory[f"observation_{turn}"], str)
        assert isinstance(prediction.reasoning, str) and isinstance(prediction.answer, float)
        json.dumps(prediction.toDict())
        assert 0.0 <= domain.metric(example, prediction).score <= 1.0


def test_lora_label_data_holds_the_teachers_whole_runs_with_tool_observations(long_tiny_lm):
    """The domain's teacher runs the gold plan through the real tools: one training pair per call,
    the lookup's observation inside the next call's prompt, and nothing but gold outputs."""
    from ax.optimizers.lora_step import LoraSettings, collect_predictor_pairs

    domain = get_domain("tool_agent")
    example = next(e for e in domain.splits().train if len(e.plan) == 2)  # lookup, calculator
    groups, rollouts = collect_predictor_pairs(domain.program(), [example], lm=long_tiny_lm, metric=domain.metric,
                                               settings=LoraSettings(data="labels"), name=domain.name, domain=domain)
    assert rollouts == 0  # no run of the model itself
    react, extract = groups["agent.react"], groups["agent.extract.predict"]
    assert len(react) == 3 and len(extract) == 1  # lookup, calculator, finish; then the answer
    observation = lookup(example.plan[0][1]["item"])
    assert observation not in react[0].prompt and observation in react[1].prompt and observation in extract[0].prompt
    assert '"item"' in react[0].completion and "calculator" in react[1].completion and "finish" in react[2].completion
    assert str(example.answer) in extract[0].completion


def test_a_trajectory_past_the_models_positions_is_cut_by_react_not_fatal(tmp_path):
    """The client's overlong-prompt error is DSPy's context-window error, so ReAct shortens its
    trajectory (here down to nothing) and the program returns instead of crashing the evaluation."""
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model
    from tiny_model import make_tiny_model

    backend = LocalBackend(load_model(str(make_tiny_model(tmp_path / "tiny"))))  # 2048 positions: a ReAct prompt fills them
    try:
        with dspy.context(lm=Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm()):
            prediction = ToolAgent()(question=get_domain("tool_agent").splits().test[0].question)
    finally:
        backend.close()
    assert prediction.finished is False and prediction.steps == 0
