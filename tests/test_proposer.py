"""The grounded GEPA proposer: proposals from the reflective dataset, and GEPA's accept/reject around them."""

from __future__ import annotations

import json

import dspy

from ax.optimizers.gepa_run import OUTCOME_FILE, GepaSettings, run_gepa
from ax.optimizers.proposer import HEADER, GroundedProposer, merge, usable_lesson
from ax.optimizers.reflection import is_local_reflection, resolve_reflection_lm
from rule_lm import rule_lm
from ax.programs.metrics import label_metric, mean_metric, numeric_metric

WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "nut", "yam", "oat"]
SHOUT = label_metric("answer")


def backwards(word: str) -> str:
    """The task LM's wrong answer."""
    return word[::-1]


def _reflective(word: str, got: str, explanation: str = "", answer: str = "") -> dict:
    """One reflective example as DSPy's GEPA adapter builds it, with the domain metrics' feedback."""
    why = {"explanation": explanation} if explanation else {}
    gold = dspy.Example(word=word, answer=answer or word.upper(), **why)
    feedback = SHOUT(gold, dspy.Prediction(answer=got)).feedback
    return {"Inputs": {"word": word}, "Generated Outputs": {"answer": got}, "Feedback": feedback}


FAILING = {"self": [
    _reflective("apple", "elppa", explanation="answers are written in capitals."),
    _reflective("pear", "PEAR"),
    _reflective("plum " * 40, "mulp", answer="PLUM"),
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
    assert lines[:3] == ["Repeat the word.", "", HEADER]
    assert "- Example: word: apple -> answer: APPLE" in lines
    assert "- Rule: answers are written in capitals." in lines
    assert lines[-1] == "- Lesson: Write the answer in capital letters, always."
    assert not any("pear" in line for line in lines)  # a correct answer teaches nothing
    plum = next(line for line in lines if "plum" in line)
    assert plum.endswith("... -> answer: PLUM") and len(plum.split()) < 35  # long inputs are shortened


def test_gold_values_of_several_fields_are_read_from_the_domain_metrics_feedback():
    metric = mean_metric(label_metric("label"), numeric_metric("amount", details=("rate",)))
    gold = dspy.Example(text="refund 12 dollars", label="billing", amount=12, rate=0.5)
    feedback = metric(gold, dspy.Prediction(label="billing", amount="x", rate=2)).feedback
    example = {"Inputs": {"text": "refund 12 dollars", "context": "a playbook"},
               "Generated Outputs": {"label": "billing", "amount": "x"}, "Feedback": feedback}
    proposal = GroundedProposer(ask_lesson=False)({"p": "Classify."}, {"p": [example]}, ["p"])["p"]
    # The gold values of this predictor's own fields; the playbook and the intermediate `rate` stay out.
    assert proposal.splitlines()[-1] == "- Example: text: refund 12 dollars -> label: billing; amount: 12"


def test_junk_from_the_reflection_model_is_dropped_and_nothing_is_added_twice():
    for junk in ["", "ok", "[[ ## lesson ## ]] [[ ## lesson ## ]]", "def f(x): return x", "the the the the the the",
                 "apple => Wrong `answer`: expected 'APPLE'"]:
        assert usable_lesson(junk) is None
    with dspy.context(lm=lesson_lm("```python\nprint(1)\n```")):
        first = GroundedProposer()({"self": "Repeat the word."}, FAILING, ["self"])["self"]
        # Every failure is covered already: no proposal, which GEPA skips without spending metric calls.
        assert GroundedProposer()({"self": first}, FAILING, ["self"]) == {}
        # A failure the instruction does not cover yet is learned first, whatever its position.
        more = {"self": FAILING["self"] + [_reflective("fig", "fog")]}
        second = GroundedProposer(max_failures=1)({"self": first}, more, ["self"])["self"]
    assert "print" not in first and second == f"{first}\n- Example: word: fig -> answer: FIG"
    lines = [f"- Example: item {i} -> answer: {i}" for i in range(60)]
    crowded = merge("Base.\n- a bullet of the seed instruction", lines, max_added_words=30)
    base, added = crowded.split(f"\n\n{HEADER}\n")
    assert base == "Base.\n- a bullet of the seed instruction"  # the instruction's own lines never give way
    assert sum(len(line.split()) for line in added.splitlines()) <= 30
    assert added.splitlines()[-1] == "- Example: item 59 -> answer: 59"  # the oldest added lines gave way


def test_the_proposer_runs_on_the_tiny_model(tiny_client):
    with dspy.context(lm=tiny_client.lm()):
        proposal = GroundedProposer()({"self": "Repeat the word."}, FAILING, ["self"])["self"]
    assert proposal.startswith("Repeat the word.") and "- Example: word: apple -> answer: APPLE" in proposal


def test_only_a_reflection_lm_resolved_from_none_counts_as_local():
    task = rule_lm(lambda instructions, inputs: {})
    local = resolve_reflection_lm(None, task)
    assert is_local_reflection(local) and is_local_reflection(local.copy())
    assert not is_local_reflection(task) and not is_local_reflection(resolve_reflection_lm(task, task))
    assert not is_local_reflection(resolve_reflection_lm("openai/gpt-4.1-mini", task))


def _examples() -> list[dspy.Example]:
    return [dspy.Example(id=f"w{i}", word=w, answer=w.upper()).with_inputs("word") for i, w in enumerate(WORDS)]


def _run(tmp_path, task_rule, reflection_lm=None):
    data = _examples()
    # With no reflection LM named, the task LM doubles as the reflection model, as the embedded model
    # does in ax's default runs (it answers the lesson field with nothing usable).
    task = rule_lm(lambda instructions, inputs: {"lesson": ""} if "mistakes" in inputs
                   else task_rule(instructions, inputs))
    optimized, outcome = run_gepa(dspy.Predict(Echo), trainset=data[:6], valset=data[6:], metric=SHOUT, lm=task,
                                  settings=GepaSettings(budget=24, num_threads=1, reflection_minibatch_size=3),
                                  run_dir=tmp_path / "run", reflection_lm=reflection_lm, show_progress=False)
    assert json.loads((tmp_path / "run" / OUTCOME_FILE).read_text())["proposer"] == outcome.proposer
    return optimized, outcome


def test_gepa_accepts_a_grounded_proposal_that_raises_the_minibatch_score(tmp_path):
    def learns_from_examples(instructions: str, inputs: dict) -> dict:  # generalizes from any worked example
        word = inputs.get("word", "")
        return {"answer": word.upper() if "-> answer: " in instructions else backwards(word)}

    optimized, outcome = _run(tmp_path, learns_from_examples)
    assert outcome.proposer == "grounded"
    assert outcome.stall.accepted >= 1 and (outcome.seed_val_score, outcome.best_val_score) == (0.0, 1.0)
    assert "- Example: word:" in optimized.signature.instructions


def test_gepa_rejects_a_grounded_proposal_that_lowers_the_minibatch_score(tmp_path):
    def confused_by_examples(instructions: str, inputs: dict) -> dict:
        word = inputs.get("word", "")
        right = "Example:" not in instructions and WORDS.index(word) % 2 == 0
        return {"answer": word.upper() if right else backwards(word)}

    optimized, outcome = _run(tmp_path, confused_by_examples)
    assert outcome.proposer == "grounded"
    assert outcome.stall.proposals >= 1 and outcome.stall.accepted == 0
    assert outcome.best_index == 0 and optimized.signature.instructions == "Repeat the word."


def test_a_named_reflection_lm_proposes_through_gepas_own_proposer(tmp_path):
    def capitals_when_told(instructions: str, inputs: dict) -> dict:
        word = inputs.get("word", "")
        return {"answer": word.upper() if "CAPITALS" in instructions else backwards(word)}

    writer = rule_lm(lambda instructions, inputs: {"new_instruction": "Repeat the word in CAPITALS."}, name="api")
    optimized, outcome = _run(tmp_path, capitals_when_told, reflection_lm=writer)
    assert outcome.proposer == "gepa" and outcome.stall.accepted >= 1
    assert optimized.signature.instructions == "Repeat the word in CAPITALS."
