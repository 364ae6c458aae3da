"""`optimize` end to end on the tiny model: four configurations, shared stages, manifests, reuse on rerun."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Literal

import dspy
import pytest

from ax.errors import AxError
from ax.optimizers.gepa_run import GepaSettings
from ax.optimizers.lora_step import LoraSettings
from ax.optimizers.manifest import ConfigManifest, load_configuration, read_manifest
from ax.optimizers.configurations import optimize
from ax.optimizers.presets import Preset
from ax.programs.domain import Domain
from ax.programs.metrics import label_metric
from ax.programs.modules import PredictProgram, context_field

TINY_LORA = dict(max_steps=1, per_device_batch_size=2, gradient_accumulation_steps=1, dev_fraction=0.0, r=4,
                 lora_alpha=8, warmup_ratio=0.0, save_steps=100, logging_steps=1)


class Sentiment(dspy.Signature):
    """Say whether the review is positive or negative."""

    context: str = context_field()
    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative"] = dspy.OutputField()


class Classify(PredictProgram):
    signature = Sentiment


def tiny_domain() -> Domain:
    words = ["great", "awful", "fine", "bad", "superb", "poor", "lovely", "dull", "nice", "grim"]
    data = [dspy.Example(review=f"The product was {w} ({i}).", sentiment="positive" if j % 2 == 0 else "negative",
                         explanation=f"the word {w!r}")
            for i in range(2) for j, w in enumerate(words)]
    return Domain(name="tinysent", program=Classify, metric=label_metric("sentiment"), data=data)


TINY = Preset(name="tiny", train_size=4, val_size=2,
              gepa=GepaSettings(budget=6, num_threads=2, reflection_minibatch_size=2),
              lora=LoraSettings(overrides=TINY_LORA, num_threads=2))


@pytest.fixture
def tiny_lm(tiny_model_dir):
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    yield Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm()
    backend.close()


def test_optimize_writes_four_configurations_from_shared_stages(tiny_lm, tmp_path):
    """Without playbooks (context=False); tests/test_default_context.py covers the default ACE stage."""
    domain = tiny_domain()
    manifests = optimize(domain, seeds=[0], preset=TINY, run_dir=tmp_path, lm=tiny_lm, context=False,
                         show_progress=False)
    by_config = {m.config: m for m in manifests}
    assert list(by_config) == ["baseline", "lora", "gepa", "combined"]
    assert {c: m.strategy for c, m in by_config.items()} == {"baseline": "", "lora": "lora", "gepa": "gepa",
                                                            "combined": "gepa->lora"}
    seed_dir = tmp_path / "tinysent" / "seed-0"
    for config, manifest in by_config.items():
        saved = read_manifest(seed_dir / "configs" / config)
        raw = json.loads((seed_dir / "configs" / config / "manifest.json").read_text())
        assert not raw["program_file"].startswith("/")  # relative: the run folder can move
        assert saved.program_file.is_file() and saved == ConfigManifest.model_validate(saved.model_dump())
        assert saved.base_model.fingerprint == tiny_lm.client.base_fingerprint
        assert saved.data == by_config["baseline"].data and len(saved.data.train_ids) == 4
        assert saved.package_versions["dspy"] and saved.package_versions["gepa"] and saved.seed == 0
        assert saved.total_cost.rollouts == sum(s.cost.rollouts for s in saved.steps)

    baseline, lora, gepa, combined = (by_config[c] for c in ("baseline", "lora", "gepa", "combined"))
    assert baseline.adapter is None and gepa.adapter is None and not baseline.steps
    assert lora.adapter.name == "tinysent-lora-s0" and combined.adapter.name == "tinysent-gepa-lora-s0"
    assert combined.steps[0] == gepa.steps[0]  # GEPA ran once, for both configurations
    assert gepa.steps[0].summary["candidates"] >= 1 and gepa.total_cost.rollouts >= 6
    assert lora.steps[0].cost.train_steps == 1 and lora.steps[0].summary["train_pairs"] >= 4  # labels at least
    combined_lora = combined.steps[1].summary
    if combined_lora["training_key"] == lora.steps[0].summary["training_key"]:  # GEPA left the prompts as they were
        assert combined_lora["copied_from"] == str(lora.adapter.path) and combined.steps[1].cost.train_steps == 0
        assert combined.adapter.fingerprint == lora.adapter.fingerprint and combined.adapter.path.is_dir()
    else:
        assert combined_lora["copied_from"] is None and combined.steps[1].cost.train_steps == 1

    from ax.configuration import load_configurations

    respondents = {c.name: c for c in load_configurations(tmp_path / "configurations.json").configurations}
    assert {name: c.cell for name, c in respondents.items()} == {
        "baseline-s0": "baseline", "lora-s0": "lora", "gepa-s0": "gepa", "combined-s0": "lora+gepa"}
    assert respondents["combined-s0"].adapter == combined.adapter.path.resolve()

    program, lm = load_configuration(seed_dir / "configs" / "combined", tiny_lm, domain)
    assert lm.adapter == "tinysent-gepa-lora-s0"
    assert program.predict.signature.instructions == json.loads(gepa.program_file.read_text())["predict"]["signature"]["instructions"]
    with dspy.context(lm=lm):
        assert program(review="It was great.").sentiment in ("positive", "negative")
    assert respondents["combined-s0"].build(domain, tiny_lm)[0].dump_state() == program.dump_state()  # the evaluator's

    again = optimize(domain, configs=["combined", "lora->gepa"], seeds=[0], preset=TINY, run_dir=tmp_path, lm=tiny_lm,
                     context=False, show_progress=False)
    assert again[0].adapter == combined.adapter  # finished stages are reused, not retrained
    assert [s.step for s in again[1].steps] == ["lora", "gepa"] and again[1].steps[0] == lora.steps[0]
    assert again[1].adapter == lora.adapter

    bigger = TINY.model_copy(update={"gepa": TINY.gepa.model_copy(update={"budget": 12})})
    with pytest.raises(AxError, match=r"stage_inputs.json.*preset.gepa.budget: 6 -> 12"):
        optimize(domain, configs=["gepa"], seeds=[0], preset=bigger, run_dir=tmp_path, lm=tiny_lm, show_progress=False)
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_lm.client.model_directory), dtype="bfloat16"))
    try:  # stages made with fp32 answers are not reused for bf16 ones
        with pytest.raises(AxError, match=r"stage_inputs.json.*base_model: '[0-9a-f]+' -> '[0-9a-f]+-bfloat16'.*"
                                          r"made with float32 weights, this run loads bfloat16: pass --dtype float32"):
            optimize(domain, configs=["gepa"], seeds=[0], preset=TINY, run_dir=tmp_path, show_progress=False,
                     lm=Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm())
    finally:
        backend.close()


def test_gepa_candidates_other_than_seed_and_best_become_calibration_respondents(tmp_path):
    from ax.optimizers.lora_step import AdapterRef
    from ax.optimizers.manifest import Artifacts, save_relative
    from ax.optimizers.respondents import gepa_candidates
    from ax.optimizers.run_files import write_json
    from ax.optimizers.tracking import Frontier, FrontierCandidate

    stage = tmp_path / "lora-gepa"
    adapter = AdapterRef(name="a", path=tmp_path / "lora" / "a", fingerprint="f", base_model_fingerprint="b",
                         training_data="both", train_examples=4)
    save_relative(Artifacts(program_file=stage / "program.json", adapter=adapter), stage / "stage.json")
    write_json(stage / "frontier.json", Frontier(iterations=3, metric_calls=30, best=2, candidates=[
        FrontierCandidate(index=i, instructions={"program.predict": f"v{i}"}, parents=[], val_score=i / 3,
                          val_scores={}, on_frontier=True, discovered_at_metric_calls=10 * i) for i in range(4)]))
    (candidate_1, candidate_3) = gepa_candidates(stage, "legal", 1)
    assert (candidate_1.name, candidate_3.name) == ("lora-gepa-s1-c1", "lora-gepa-s1-c3")
    assert candidate_1.instructions == {"predict": "v1"} and candidate_1.role == "calibration"
    assert candidate_1.cell == "lora+gepa" and candidate_1.adapter == (tmp_path / "lora" / "a").resolve()


def test_a_configuration_for_another_base_model_is_refused(tiny_lm, tmp_path):
    domain = tiny_domain()
    manifests = optimize(domain, configs=["baseline"], preset=TINY, run_dir=tmp_path, lm=tiny_lm, show_progress=False)
    other = manifests[0].model_copy(update={"base_model": manifests[0].base_model.model_copy(update={"fingerprint": "0" * 16})})
    with pytest.raises(AxError, match="was optimized on base model 'tiny'"):
        load_configuration(other, tiny_lm, domain)
    with pytest.raises(AxError, match="Unknown optimization step 'lorra'"):
        optimize(tiny_domain(), configs=["gepa->lorra"], preset=TINY, run_dir=tmp_path, lm=tiny_lm)


class Shout(dspy.Signature):
    """Repeat the word."""

    context: str = context_field()
    word: str = dspy.InputField()
    answer: str = dspy.OutputField()


class Repeat(PredictProgram):
    signature = Shout


def _shout(seed_dir, reflections: list):
    """A strategy context on a rule LM that repeats a word, in upper case once the playbook says so:
    ACE learns that from its first wrong answer, and GEPA's proposal ('Repeat the word.') changes nothing."""
    from ax.optimizers.strategies import StrategyContext
    from rule_lm import rule_lm

    def everything(instructions: str, inputs: dict) -> dict:
        if "bullets_used" in inputs:  # ACE reflector
            reflections.append(inputs)
            return {"diagnosis": "the answer was lowercase", "key_insight": "Answer in UPPERCASE.", "bullet_tags": ""}
        if "reflection" in inputs:  # ACE curator
            return {"operations": "ADD | strategies | Answer with the word in UPPERCASE."}
        if "current_instruction" in inputs:  # GEPA proposer
            return {"new_instruction": "Repeat the word."}
        word = inputs["word"]
        return {"answer": word.upper() if "UPPERCASE" in inputs.get("context", "") else word}

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=float(pred.answer == gold.answer), feedback=f"expected {gold.answer!r}")

    words = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "nut", "yam", "oat"]
    domain = Domain(name="shout", program=Repeat, metric=metric,
                    data=[dspy.Example(word=w, answer=w.upper()) for w in words])
    lm = rule_lm(everything)
    splits = domain.splits()
    return StrategyContext(domain=domain, lm=lm, trainset=splits.train[:3], valset=splits.dev[:2],
                           preset=TINY.model_copy(update={"ace_epochs": 1}), seed=0, seed_dir=seed_dir,
                           reflection_lm=lm, show_progress=False)


def test_an_ace_playbook_is_part_of_the_state_later_steps_build_on(tmp_path):
    """ace->gepa: ACE learns 'UPPERCASE' into the playbook, and GEPA then runs the program reading it."""
    from ax.optimizers.strategies import baseline, run_strategy

    ctx = _shout(tmp_path, [])
    state = run_strategy(("ace", "gepa"), ctx, baseline(ctx))

    assert state.playbook.bullets == 1 and state.playbook.path.is_file()
    assert [s.step for s in state.steps] == ["ace", "gepa"]
    # The first answer was wrong; the bullet ACE learned from it made the next two right.
    assert state.steps[0].summary["mean_score_per_epoch"] == [pytest.approx(2 / 3)]
    gepa = state.steps[1].summary
    assert gepa["seed_val_score"] == 1.0 and gepa["stalled"]  # with the playbook the program is already right
    assert "UPPERCASE" in json.loads(state.playbook.path.read_text())["bullets"][0]["content"]


def test_an_ace_step_on_what_an_earlier_one_adapted_copies_its_playbook(tmp_path):
    """gepa->ace after a GEPA stage that accepted nothing starts from the program, playbook and base
    model `ace` started from: its playbook is copied, no item is answered again, and it says so."""
    from ax.optimizers.respondents import step_info
    from ax.optimizers.strategies import baseline, run_strategy

    reflections: list = []
    ctx = _shout(tmp_path, reflections)
    start = baseline(ctx)
    ace = run_strategy(("ace",), ctx, start)
    adapted = len(reflections)
    both = run_strategy(("gepa", "ace"), ctx, start)

    assert both.steps[0].summary["accepted"] == 0 and adapted > 0
    assert len(reflections) == adapted  # nothing adapted again
    copied = both.steps[1]
    assert copied.summary["copied_from"] == "ace" and copied.cost.lm_calls == 0
    assert copied.summary["ace_key"] == ace.steps[-1].summary["ace_key"]
    assert json.loads(both.playbook.path.read_text()) == json.loads(ace.playbook.path.read_text())
    assert both.playbook.path != ace.playbook.path  # a copy in the stage's own folder
    manifest = SimpleNamespace(playbook=both.playbook, steps=both.steps, predictor_adapters={})
    assert "copied from stage ace" in step_info(copied, manifest).detail


def test_a_misspelt_lora_override_fails_when_the_preset_is_built():
    with pytest.raises(AxError, match="max_step = 2"):
        LoraSettings(overrides={"max_step": 2})
    with pytest.raises(AxError, match="per_device_batch_size = 0"):
        LoraSettings(overrides={"per_device_batch_size": 0})
