"""GEPA runs through dspy.GEPA on scripted LMs: run directory, saved program, stalls, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dspy
import pytest

from ax.errors import AxError
from ax.optimizers.gepa_run import GepaSettings, run_gepa
from rule_lm import rule_lm
from ax.optimizers.tracking import Frontier, ProposalLog

WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "nut", "yam", "oat"]


class Echo(dspy.Signature):
    """Repeat the word."""

    word: str = dspy.InputField()
    answer: str = dspy.OutputField()


def examples() -> list[dspy.Example]:
    return [dspy.Example(id=f"w{i}", word=w, answer=w.upper()).with_inputs("word") for i, w in enumerate(WORDS)]


def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    right = pred.answer == gold.answer
    return dspy.Prediction(score=float(right), feedback="correct" if right else f"expected {gold.answer!r}")


def uppercase_when_told(instructions: str, inputs: dict) -> dict:
    return {"answer": inputs["word"].upper() if "UPPERCASE" in instructions else inputs["word"]}


def propose(text: str):
    return rule_lm(lambda instructions, inputs: {"new_instruction": text}, name="reflect")


def run(tmp_path: Path, task_rule=uppercase_when_told, proposal="Answer with the word in UPPERCASE.", budget=30):
    data = examples()
    return run_gepa(dspy.Predict(Echo), trainset=data[:6], valset=data[6:], metric=metric, lm=rule_lm(task_rule),
                    settings=GepaSettings(budget=budget, num_threads=2), run_dir=tmp_path / "run",
                    reflection_lm=propose(proposal), show_progress=False)


def test_run_directory_holds_frontier_proposals_cost_and_a_loadable_best_program(tmp_path):
    optimized, outcome = run(tmp_path)
    run_dir = tmp_path / "run"

    assert optimized.signature.instructions == "Answer with the word in UPPERCASE."
    assert (outcome.seed_val_score, outcome.best_val_score, outcome.best_index) == (0.0, 1.0, 1)
    frontier = Frontier.model_validate_json((run_dir / "frontier.json").read_text())
    assert [c.val_scores for c in frontier.candidates] == [{"w6": 0.0, "w7": 0.0, "w8": 0.0, "w9": 0.0},
                                                          {"w6": 1.0, "w7": 1.0, "w8": 1.0, "w9": 1.0}]
    assert [c.on_frontier for c in frontier.pareto] == [True] and frontier.best == 1
    records = ProposalLog.model_validate_json((run_dir / "proposals.json").read_text()).records
    assert records[0].outcome == "accepted" and records[0].proposed == {"self": "Answer with the word in UPPERCASE."}
    assert {r.outcome for r in records[1:]} == {"perfect"}  # nothing left to learn once every answer is right
    cost = json.loads((run_dir / "cost.json").read_text())
    assert cost["rollouts"] == outcome.cost.rollouts >= 30 and cost["reflection_calls"] == 1
    assert cost["reflection_tokens"] > 0 and cost["wall_s"] > 0
    assert (run_dir / "gepa" / "gepa_state.bin").is_file() and (run_dir / "gepa_log.txt").stat().st_size > 0

    loaded = dspy.Predict(Echo)
    loaded.load(str(run_dir / "best_program.json"))
    saved = json.loads((run_dir / "best_program.json").read_text())
    assert loaded.signature.instructions == optimized.signature.instructions
    assert loaded.dump_state() == {k: v for k, v in saved.items() if k != "metadata"}


def test_budget_too_small_is_explained_before_the_run(tmp_path, capsys):
    run(tmp_path, budget=4)
    err = capsys.readouterr().err
    assert "GEPA budget: 4 metric calls (train 6, val 4, minibatch 3)" in err
    assert "no proposal will be made" in err and "GEPA stalled: no iteration ran" in err


def test_a_reflection_model_that_never_helps_is_reported_as_a_stall(tmp_path, capsys):
    _, outcome = run(tmp_path, proposal="Repeat the word exactly.")
    assert outcome.stall.stalled and outcome.stall.accepted == 0 and outcome.stall.proposals >= 3
    assert "none of the" in outcome.stall.reasons[0]
    err = capsys.readouterr().err
    assert "GEPA stalled: none of the" in err


def test_a_program_that_is_already_perfect_is_reported_as_a_stall(tmp_path):
    _, outcome = run(tmp_path, task_rule=lambda instructions, inputs: {"answer": inputs["word"].upper()})
    assert outcome.stall.stalled and outcome.stall.perfect_minibatches == outcome.stall.iterations > 0
    assert outcome.stall.reasons[0].startswith("every minibatch was already scored perfectly")


def test_a_run_directory_of_other_data_is_refused(tmp_path):
    run(tmp_path)
    data = examples()
    with pytest.raises(AxError, match="another program or data .*train"):
        run_gepa(dspy.Predict(Echo), trainset=data[:5], valset=data[6:], metric=metric,
                 lm=rule_lm(uppercase_when_told), settings=GepaSettings(budget=30), run_dir=tmp_path / "run",
                 reflection_lm=propose("x"), show_progress=False)


# A GEPA run in its own process, slowed down so that it can be killed between iterations.
_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_optimize_gepa import *

    def slow(instructions, inputs):
        time.sleep(0.02)
        return uppercase_when_told(instructions, inputs)

    data = examples()
    _, outcome = run_gepa(dspy.Predict(Echo), trainset=data[:6], valset=data[6:], metric=metric, lm=rule_lm(slow),
                          settings=GepaSettings(budget=150, num_threads=1), run_dir={run_dir!r},
                          reflection_lm=propose("Answer with the word in UPPERCASE."), show_progress=False)
    print("RESUMED_FROM", outcome.resumed_from_iteration, "CANDIDATES", outcome.candidates)
""")


def test_killed_run_resumes_at_the_iteration_reached_without_losing_candidates(tmp_path):
    run_dir = tmp_path / "run"
    script = _SCRIPT.format(tests=str(Path(__file__).parent), run_dir=str(run_dir))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proposals = run_dir / "proposals.json"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if proposals.is_file() and len(ProposalLog.model_validate_json(proposals.read_text()).records) >= 4:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = Frontier.model_validate_json((run_dir / "frontier.json").read_text())
    records_before = ProposalLog.model_validate_json(proposals.read_text()).records
    assert len(before.candidates) == 2 and len(records_before) >= 4

    finished = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    resumed_from = int(finished.stdout.split("RESUMED_FROM ")[1].split()[0])
    assert resumed_from >= len(records_before) - 1 > 0  # at most the iteration in flight is redone
    assert "Resuming the GEPA run" in finished.stderr
    after = Frontier.model_validate_json((run_dir / "frontier.json").read_text())
    assert [c.instructions for c in after.candidates[:2]] == [c.instructions for c in before.candidates]
    assert json.loads((run_dir / "cost.json").read_text())["rollouts"] == after.metric_calls  # counted across the kill
    iterations = [r.iteration for r in ProposalLog.model_validate_json(proposals.read_text()).records]
    assert iterations == list(range(1, len(iterations) + 1)) and len(iterations) > len(records_before)
