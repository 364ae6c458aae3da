"""The grounded GEPA proposer: proposals from the reflective dataset, and GEPA's accept/reject around them."""

from __future__ import annotations

import dspy

from ax.optimizers.gepa_run import GepaSettings, run_gepa
from ax.optimizers.proposer import GroundedProposer, merge, usable_lesson
from ax.optimizers.testing import rule_lm

WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "nut", "yam", "oat"]
FAILING = {"self": [
    {"Inputs": {"word": "apple"}, "Generated Outputs": {"answer": "apple"},
     "Feedback": "Wrong `answer`: expected 'APPLE', got 'apple'. Why: answers are written in capitals."},
    {"Inputs": {"word": "pear"}, "Generated Outputs": {"answer": "PEAR"}, "Feedback": "Correct: `answer` = 'PEAR'."},
    {"Inputs": {"word": "plum " * 40}, "Generated Outputs": "garbled", "Feedback": "The prediction has no `answer`; expected 'PLUM'."},
]}


class Echo(dspy.Signature):
    """Repeat the word."""

    word: str = dspy.InputField()
    answer: str = dspy.OutputField()


def lesson_lm(text: str):
    return rule_lm(lambda instructions, inputs: {"lesson": text}, name="reflect")


def test_a_proposal_holds_worked_examples_the_rule_and_a_usable_lesson():
    with dspy.context(lm=lesson_lm("Write the answer in capital letters, always.")):
        proposal = GroundedProposer()({"self": "Repeat the word."}, FAILING, ["self"])["self"]
    lines = proposal.splitlines()
    assert lines[0] == "Repeat the word."
    assert "- Example: word: apple -> answer 'APPLE'" in lines
    assert "- Rule: answers are written in capitals." in lines
    assert "- Write the answer in capital letters, always." in lines
    assert not any("pear" in line for line in lines)  # a correct answer teaches nothing
    plum = next(line for line in lines if "plum" in line)
    assert plum.endswith("... -> answer 'PLUM'") and len(plum.split()) < 35  # long inputs are shortened


def test_junk_from_the_reflection_model_is_dropped_and_nothing_is_added_twice():
    for junk in ["", "ok", "[[ ## lesson ## ]] [[ ## lesson ## ]]", "def f(x): return x", "the the the the the the"]:
        assert usable_lesson(junk) is None
    with dspy.context(lm=lesson_lm("```python\nprint(1)\n```")):
        first = GroundedProposer()({"self": "Repeat the word."}, FAILING, ["self"])["self"]
        again = GroundedProposer()({"self": first}, FAILING, ["self"])["self"]
    assert "print" not in first and again == first
    crowded = merge("Base.", [f"- Example: item {i} -> answer {i}" for i in range(60)], max_added_words=30)
    assert crowded.startswith("Base.") and sum(len(line.split()) for line in crowded.splitlines()[1:]) <= 30
    assert crowded.splitlines()[-1] == "- Example: item 59 -> answer 59"  # the oldest lines gave way


def test_the_proposer_runs_on_the_tiny_model(tiny_client):
    with dspy.context(lm=tiny_client.lm()):
        proposal = GroundedProposer()({"self": "Repeat the word."}, FAILING, ["self"])["self"]
    assert proposal != "Repeat the word." and "- Example: word: apple -> answer 'APPLE'" in proposal


def _examples() -> list[dspy.Example]:
    return [dspy.Example(id=f"w{i}", word=w, answer=w.upper()).with_inputs("word") for i, w in enumerate(WORDS)]


def _metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    right = pred.answer == gold.answer
    return dspy.Prediction(score=float(right), feedback=f"Correct: `answer` = {gold.answer!r}." if right else
                           f"Wrong `answer`: expected {gold.answer!r}, got {pred.answer!r}.")


def _run(tmp_path, task_rule):
    data = _examples()
    # A local reflection model (none named) gets the grounded proposer by default; here the task LM
    # doubles as the reflection model, as the embedded model does in ax's default runs.
    task = rule_lm(lambda instructions, inputs: {"lesson": "", **task_rule(instructions, inputs)})
    return run_gepa(dspy.Predict(Echo), trainset=data[:6], valset=data[6:], metric=_metric, lm=task,
                    settings=GepaSettings(budget=24, num_threads=1, reflection_minibatch_size=3),
                    run_dir=tmp_path / "run", show_progress=False)


def test_gepa_accepts_a_grounded_proposal_that_raises_the_minibatch_score(tmp_path):
    def learns_from_examples(instructions: str, inputs: dict) -> dict:  # generalizes from any worked example
        word = inputs.get("word", "")
        return {"answer": word.upper() if "-> answer '" in instructions else word}

    optimized, outcome = _run(tmp_path, learns_from_examples)
    assert outcome.proposer == "grounded"
    assert outcome.stall.accepted >= 1 and (outcome.seed_val_score, outcome.best_val_score) == (0.0, 1.0)
    assert "- Example: word:" in optimized.signature.instructions


def test_gepa_rejects_a_grounded_proposal_that_lowers_the_minibatch_score(tmp_path):
    def confused_by_examples(instructions: str, inputs: dict) -> dict:
        word = inputs.get("word", "")
        right = "Example:" not in instructions and WORDS.index(word) % 2 == 0
        return {"answer": word.upper() if right else word}

    optimized, outcome = _run(tmp_path, confused_by_examples)
    assert outcome.stall.proposals >= 1 and outcome.stall.accepted == 0
    assert outcome.best_index == 0 and optimized.signature.instructions == "Repeat the word."
