"""Offline and online adaptation on scripted LMs: the playbook evolves, runs resume, cost is counted."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils.dummies import DummyLM

from ax.context.adaptation import PlaybookLearner
from ax.context.assembler import ContextAssembler, WithContext
from ax.context.store import PlaybookStore
from ax.errors import AxError


class QA(dspy.Signature):
    """Answer the question."""

    context: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def program_lm() -> DummyLM:
    return DummyLM({"[[ ## question ## ]]": {"answer": "Paris [str-00001]"}})


def teacher_lm(operations: str = "ADD | strategies | Check the units of every figure\nnot an operation") -> DummyLM:
    """Answers the Reflector and Curator prompts, told apart by their input fields."""
    return DummyLM({
        "[[ ## bullets_used ## ]]": {"diagnosis": "answered without checking units", "key_insight": "check units",
                                     "bullet_tags": "str-00001: helpful"},
        "[[ ## sections ## ]]": {"operations": operations},
    })


TRAINSET = [dspy.Example(question=f"question {i} about units", answer="Paris").with_inputs("question") for i in range(4)]


class RecordingMetric:
    """Scores exact answers; records which questions it saw; can fail on a given call."""

    def __init__(self, fail_on_call: int | None = None):
        self.seen: list[str] = []
        self.fail_on_call = fail_on_call

    def __call__(self, example, prediction, trace=None):
        if self.fail_on_call is not None and len(self.seen) + 1 == self.fail_on_call:
            raise KeyboardInterrupt("simulated Ctrl-C")
        self.seen.append(example.question)
        return dspy.Prediction(score=float(prediction.answer == example.answer), feedback="the answer must be bare")


def make_learner(root, metric, teacher=None):
    """A learner built the way a fresh process would: playbook loaded from the store."""
    store = PlaybookStore(root)
    program = WithContext(dspy.Predict(QA), ContextAssembler(store.load("geo"), token_budget=500))
    return PlaybookLearner(program, metric, store=store, lm=teacher or teacher_lm())


def offline_sources(root) -> list[str]:
    history = PlaybookStore(root).load("geo").history
    return [h.source for h in history if h.source.startswith("offline")]


def test_offline_adaptation_evolves_the_playbook_and_counts_cost(tmp_path):
    teacher = teacher_lm()
    metric = RecordingMetric()
    learner = make_learner(tmp_path, metric, teacher)
    with dspy.context(lm=program_lm()):
        report = learner.offline(TRAINSET, epochs=2)

    playbook = PlaybookStore(tmp_path).load("geo")
    assert [(b.id, b.content) for b in playbook.bullets] == [("str-00001", "Check the units of every figure")]
    assert playbook.bullets[0].helpful == 7  # tagged helpful on every task after it was added
    assert report.processed == 8 and report.epochs_done == 2 and report.resumed_from == 0
    assert report.bullets == 1 and report.playbook_version == playbook.version
    assert report.mean_score_per_epoch == [0.0, 0.0]
    assert {role: c.lm_calls for role, c in report.cost.items()} == {"generator": 8, "reflector": 8, "curator": 8}
    assert report.total_cost.lm_calls == 24 and report.total_cost.wall_s > 0
    assert len(teacher.history) == 16  # Reflector and Curator ran on the teacher, not the program's LM
    assert sorted(metric.seen) == sorted([e.question for e in TRAINSET] * 2)
    # every task re-proposed the same lesson; refinement merged each copy into the first
    merges = [op for h in playbook.history if h.source.startswith("refine after") for op in h.operations]
    assert len(merges) == 7 and {op.op for op in merges} == {"merge"}

    state = json.loads((tmp_path / "geo" / "adaptation-offline.json").read_text())
    assert (state["epoch"], state["position"], state["playbook_version"]) == (2, 0, playbook.version)

    again = make_learner(tmp_path, RecordingMetric())
    with dspy.context(lm=program_lm()):
        assert again.offline(TRAINSET, epochs=2).processed == 0
        more = again.offline(TRAINSET, epochs=3)
    assert more.processed == 4 and more.epochs_done == 3
    assert more.cost["generator"].lm_calls == 12  # cost accumulates across runs


def test_offline_resumes_after_interruption_without_redoing_items(tmp_path):
    with dspy.context(lm=program_lm()):
        first = RecordingMetric(fail_on_call=6)
        with pytest.raises(KeyboardInterrupt):
            make_learner(tmp_path, first).offline(TRAINSET, epochs=2)
        assert len(first.seen) == 5

        second = RecordingMetric()
        report = make_learner(tmp_path, second).offline(TRAINSET, epochs=2)

    assert len(second.seen) == 3 and report.processed == 3 and report.resumed_from == 1
    sources = offline_sources(tmp_path)
    assert len(sources) == len(set(sources)) == 8  # every item of both epochs exactly once
    assert sorted(first.seen + second.seen) == sorted([e.question for e in TRAINSET] * 2)


def test_crash_between_playbook_and_checkpoint_is_not_redone(tmp_path, monkeypatch):
    learner = make_learner(tmp_path, RecordingMetric())
    calls = {"n": 0}
    original = PlaybookLearner._checkpoint

    def flaky_checkpoint(self, state):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("power cut")
        original(self, state)

    monkeypatch.setattr(PlaybookLearner, "_checkpoint", flaky_checkpoint)
    with dspy.context(lm=program_lm()), pytest.raises(OSError):
        learner.offline(TRAINSET, epochs=1)
    monkeypatch.undo()

    second = RecordingMetric()
    with dspy.context(lm=program_lm()):
        make_learner(tmp_path, second).offline(TRAINSET, epochs=1)
    assert len(second.seen) == 1  # items 1-2 checkpointed, item 3 saved in the playbook: only item 4 runs
    assert len(offline_sources(tmp_path)) == 4


def test_changed_trainset_needs_restart(tmp_path):
    with dspy.context(lm=program_lm()):
        make_learner(tmp_path, RecordingMetric()).offline(TRAINSET[:2])
        with pytest.raises(AxError, match="different train set"):
            make_learner(tmp_path, RecordingMetric()).offline(TRAINSET)
        report = make_learner(tmp_path, RecordingMetric()).offline(TRAINSET, restart=True)
    assert report.processed == 4


def test_online_learns_from_labelled_tasks_and_resumes(tmp_path):
    stream = [*TRAINSET[:2], dspy.Example(question="unlabelled").with_inputs("question"), TRAINSET[2]]
    metric = RecordingMetric()
    with dspy.context(lm=program_lm()):
        steps = make_learner(tmp_path, metric).online(stream)
        first = [next(steps), next(steps)]
        steps.close()  # the service stops after two tasks
        rest = list(make_learner(tmp_path, metric).online(stream))

    assert [s.source for s in first + rest] == [f"online item {i}" for i in range(4)]
    assert rest[0].score is None and rest[0].applied == 0 and rest[0].output["answer"].startswith("Paris")
    assert first[0].applied >= 1 and first[1].applied >= 1
    assert len(metric.seen) == 3
    assert "[str-00001]" in PlaybookStore(tmp_path).load("geo").render()


def test_unparseable_teacher_output_never_crashes_a_run(tmp_path):
    broken = DummyLM({"[[ ## bullets_used ## ]]": {"wrong_field": "x"},
                      "[[ ## sections ## ]]": {"operations": "garbage"}})
    learner = make_learner(tmp_path, RecordingMetric(), broken)
    with dspy.context(lm=program_lm()):
        step = learner.step(TRAINSET[0], source="t")
    assert step.malformed  # reflection failed: nothing curated, reason kept
    assert len(broken.history) == 2  # the reflector tried twice (ChatAdapter, then JSON); no curator call
    # what is learned is the metric's feedback on the failed task, not the teacher's garbage
    assert [(b.section, b.content) for b in learner.playbook.bullets] == [("pitfalls", "the answer must be bare")]


def teacher_echoing_template(operations: str) -> DummyLM:
    """What SmolLM2-135M answers: the `{field}` placeholders of DSPy's format template."""
    return DummyLM({"[[ ## bullets_used ## ]]": {"diagnosis": "{answer}", "key_insight": "{paris}",
                                                 "bullet_tags": "{answer}"},
                    "[[ ## sections ## ]]": {"operations": operations}})


def test_template_echoes_teach_only_the_metric_feedback_and_only_on_failures(tmp_path):
    teacher = teacher_echoing_template("{task_input}")
    learner = make_learner(tmp_path, RecordingMetric(), teacher)
    right = dspy.Example(question="capital of France", answer="Paris [str-00001]").with_inputs("question")
    with dspy.context(lm=program_lm()):
        failed = learner.step(TRAINSET[0], source="t0")
        solved = learner.step(right, source="t1")

    assert "key_insight '{paris}' only echoes the format template" in failed.malformed
    assert failed.applied == 1 and solved.applied == 0
    assert [b.content for b in learner.playbook.bullets] == ["the answer must be bare"]
    assert len(teacher.history) == 2  # an echoed reflection is not sent on to the curator


def test_curator_lines_that_do_not_parse_keep_the_key_insight_but_none_is_respected(tmp_path):
    learner = make_learner(tmp_path, RecordingMetric(), teacher_lm(operations="{task_input}"))
    with dspy.context(lm=program_lm()):
        learner.step(TRAINSET[0], source="t0")
    assert [(b.section, b.content) for b in learner.playbook.bullets] == [("strategies", "check units")]

    declined = make_learner(tmp_path / "none", RecordingMetric(), teacher_lm(operations="NONE"))
    with dspy.context(lm=program_lm()):
        assert declined.step(TRAINSET[0], source="t0").applied == 0
    assert declined.playbook.bullets == []


def test_one_cost_reads_old_checkpoints_and_counts_calls_once_the_lm_history_is_full():
    from ax.client.cost import Cost, CostMeter

    old = {"lm_calls": 2, "input_tokens": 30, "output_tokens": 4, "seconds": 1.5}  # adaptation-*.json before one Cost
    assert Cost.model_validate(old) == Cost(lm_calls=2, prompt_tokens=30, completion_tokens=4, wall_s=1.5)
    lm = program_lm()
    with dspy.context(lm=lm, max_history_size=3):
        for _ in range(4):
            dspy.Predict(QA)(context="", question="capital?")
        meter = CostMeter(lm)  # the history is full: DSPy drops its oldest entry for each new one
        for _ in range(2):
            dspy.Predict(QA)(context="", question="capital?")
        assert meter.stop().lm_calls == 2 and len(lm.history) == 3
