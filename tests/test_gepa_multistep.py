"""GEPA on a two-predictor program: the predictor whose step feedback is wrong is the one evolved, and says so."""

from __future__ import annotations

from datetime import datetime

import dspy
import pytest

from ax.context import ContextAssembler, Playbook, WithContext
from ax.optimizers.gepa_run import OUTCOME_FILE, GepaOutcome, GepaSettings, run_gepa
from ax.optimizers.manifest import ConfigManifest, StepRecord
from ax.optimizers.proposer import GroundedProposer, failures
from ax.optimizers.respondents import step_info
from ax.optimizers.run_files import own_program
from rule_lm import rule_lm
from ax.optimizers.tracking import Frontier, FrontierCandidate, ProposalLog, predictor_changes
from ax.programs.metrics import Step, numeric_metric, step_metric, text_metric
from ax.programs.modules import context_field

WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "nut", "yam", "oat"]


class ReadWord(dspy.Signature):
    """Copy the word the sentence is about."""

    context: str = context_field()
    sentence: str = dspy.InputField()
    word: str = dspy.OutputField()


class CountLetters(dspy.Signature):
    """Say how many letters the word has."""

    context: str = context_field()
    word: str = dspy.InputField()
    letters: int = dspy.OutputField()


class WordLength(dspy.Module):
    def __init__(self):
        super().__init__()
        self.read = dspy.Predict(ReadWord)
        self.count = dspy.Predict(CountLetters)

    def forward(self, sentence: str, context: str = "") -> dspy.Prediction:
        word = self.read(context=context, sentence=sentence).word
        return dspy.Prediction(word=word, letters=self.count(context=context, word=word).letters)


METRIC = step_metric(Step("read", text_metric("word"), ("read",)), Step("count", numeric_metric("letters"), ("count",)))


def examples() -> list[dspy.Example]:
    return [dspy.Example(id=f"w{i}", sentence=f"The word is {w}.", word=w, letters=len(w),
                         explanation=f"{w!r} is spelled {'-'.join(w)}").with_inputs("sentence")
            for i, w in enumerate(WORDS)]


def task_and_reflection(instructions: str, inputs: dict) -> dict:
    """`read` is always right; `count` only once its instruction says LETTER, which the reflection
    model (the same LM, asked for a lesson) writes only when it reads the count step's feedback."""
    if "mistakes" in inputs:
        return {"lesson": "Count every LETTER of the word, one by one." if "Step count:" in inputs["mistakes"]
                else "Read the sentence closely and copy the word."}
    if "sentence" in inputs:
        return {"word": inputs["sentence"].split()[-1].rstrip(".")}
    return {"letters": len(inputs["word"]) if "LETTER" in instructions else 0}


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "playbook-wrapped"])
def test_gepa_evolves_the_predictor_whose_step_is_wrong_and_credits_it(tmp_path, wrapped):
    program = WordLength()
    if wrapped:  # GEPA then names the predictors "program.read" and "program.count"
        program = WithContext(program, ContextAssembler(Playbook(domain="words")))
    prefix = "program." if wrapped else ""
    data = examples()
    optimized, outcome = run_gepa(program, trainset=data[:6], valset=data[6:], metric=METRIC,
                                  lm=rule_lm(task_and_reflection),
                                  settings=GepaSettings(budget=30, num_threads=1, reflection_minibatch_size=3),
                                  run_dir=tmp_path / "run", show_progress=False)

    best = own_program(optimized)
    assert outcome.proposer == "grounded" and (outcome.seed_val_score, outcome.best_val_score) == (0.5, 1.0)
    assert best.read.signature.instructions == ReadWord.instructions
    assert "LETTER" in best.count.signature.instructions
    assert [(p.name, p.component, p.changed, p.steps) for p in outcome.predictors] == [
        ("read", f"{prefix}read", False, 0), ("count", f"{prefix}count", True, 1)]
    assert [p.val_gain for p in outcome.predictors] == [0.0, pytest.approx(0.5)]
    saved = GepaOutcome.model_validate_json((tmp_path / "run" / OUTCOME_FILE).read_text())
    assert saved.predictors == outcome.predictors
    # Both predictors had their turn; `read`, right on every step it decides, got no proposal.
    records = ProposalLog.model_validate_json((tmp_path / "run" / "proposals.json").read_text()).records
    assert [r.outcome for r in records[:2]] == ["no_proposal", "accepted"]
    assert list(records[1].proposed) == [f"{prefix}count"]

    step = StepRecord(step="gepa", stage_dir=tmp_path / "run", cost=outcome.cost,
                      summary={"proposals": outcome.stall.proposals, "accepted": outcome.stall.accepted,
                               "seed_val_score": outcome.seed_val_score, "best_val_score": outcome.best_val_score})
    manifest = ConfigManifest(program_file=tmp_path / "program.json", steps=[step], domain="words", config="gepa",
                              strategy="gepa", preset="test", seed=0, base_model={"name": "m", "fingerprint": "fp"},
                              data={"hash": "h", "train_ids": [], "val_ids": []}, total_cost={},
                              package_versions={}, created=datetime(2026, 1, 1))
    info = step_info(step, manifest)
    assert info.changed and info.detail.endswith(
        "validation 0.50 -> 1.00; instruction of count changed (+0.50 validation), read kept")


def test_the_grounded_proposer_reads_every_step_of_whole_program_feedback():
    # Without `pred_name` the feedback holds both steps, each with its own "Why:"; the second is wrong.
    gold = examples()[0]
    feedback = METRIC(gold, dspy.Prediction(word="apple", letters=0)).feedback
    assert feedback.startswith("Step read: Correct") and "Step count: Wrong `letters`" in feedback
    example = {"Inputs": {"context": "", "word": "apple"}, "Generated Outputs": {"letters": "0"}, "Feedback": feedback}
    assert failures([example]) == [example]
    proposal = GroundedProposer(ask_lesson=False)({"count": "Count."}, {"count": [example]}, ["count"])["count"]
    assert proposal.splitlines()[-2:] == ["- Example: word: apple -> letters: 5",
                                          "- Rule: 'apple' is spelled a-p-p-l-e"]  # once, from the wrong step
    right = METRIC(gold, dspy.Prediction(word="apple", letters=5)).feedback
    assert failures([{**example, "Feedback": right}]) == []


def _candidate(index: int, parents: list[int | None], val_score: float, **instructions: str) -> FrontierCandidate:
    return FrontierCandidate(index=index, instructions={"a": "A", "b": "B", "c": "C", **instructions}, parents=parents,
                             val_score=val_score, val_scores={}, on_frontier=False, discovered_at_metric_calls=0)


def test_gains_follow_the_lineage_from_the_seed_to_the_best_candidate():
    frontier = Frontier(iterations=5, metric_calls=0, best=5, candidates=[
        _candidate(0, [None], 0.2),
        _candidate(1, [0], 0.5, a="A1"),
        _candidate(2, [1], 0.4, a="A1", b="B1"),  # validation fell: b's share is negative
        _candidate(3, [2], 0.8, a="A2", b="B1"),
        _candidate(4, [0], 0.6, c="C1"),  # a branch off the best's lineage
        _candidate(5, [3, 4], 0.9, a="A2", b="B1", c="C1"),  # a merge: takes c from its second parent
    ])
    changes = {p.component: p for p in predictor_changes(frontier, 3, {"a": "first"})}
    assert [(p.name, p.changed, p.steps) for p in changes.values()] == [
        ("first", True, 2), ("b", True, 1), ("c", False, 0)]
    assert [changes[c].val_gain for c in "abc"] == [pytest.approx(0.7), pytest.approx(-0.1), 0.0]
    assert sum(p.val_gain for p in changes.values()) == pytest.approx(0.8 - 0.2)

    merged = {p.component: p for p in predictor_changes(frontier, 5)}
    assert (merged["c"].changed, merged["c"].steps, merged["c"].val_gain) == (True, 1, pytest.approx(0.1))
    assert merged["a"].val_gain == pytest.approx(0.7)


def test_the_summary_names_what_changed_and_what_was_kept():
    frontier = Frontier(iterations=2, metric_calls=0, best=2, candidates=[
        _candidate(0, [None], 0.2), _candidate(1, [0], 0.5, a="A1"), _candidate(2, [1], 0.4, a="A1", b="B1")])
    outcome = GepaOutcome.model_construct(predictors=predictor_changes(frontier, 2))
    assert outcome.predictor_summary() == ("instruction of a changed (+0.30 validation), "
                                           "instruction of b changed (-0.10 validation), c kept")
    assert GepaOutcome.model_construct(predictors=predictor_changes(frontier, 0)).predictor_summary() == ""
