"""The ax LM fine-tunes through DSPy's Provider interface: LoRA in-process, BootstrapFinetune and BetterTogether unchanged."""

from __future__ import annotations

import dspy
import pytest
from dspy.adapters.chat_adapter import ChatAdapter
from dspy.clients.utils_finetune import TrainDataFormat

from ax.adapter_store import read_manifest
from ax.adapters.config import load_config
from ax.adapters.dataset import TrainingPair
from ax.client.prompting import training_pair
from ax.errors import AxError
from ax.optimizers.provider import chat_pair, finetunable
from ax.programs.metrics import passing


class Review(dspy.Signature):
    """Classify the clause."""

    clause: str = dspy.InputField()
    kind: str = dspy.OutputField()
    party: str = dspy.OutputField()


TINY_LORA = dict(max_steps=2, per_device_batch_size=2, gradient_accumulation_steps=1, dev_fraction=0.0, r=4,
                 lora_alpha=8, warmup_ratio=0.0, save_steps=100, logging_steps=1)


@pytest.fixture
def tiny_lm(tiny_model_dir, tmp_path):
    from ax.client import Client
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    lm = Client(backend, model_name="tiny", cache=False, max_field_tokens=8).lm()  # short answers keep it fast
    finetunable(lm, config=load_config().with_overrides(**TINY_LORA), store=tmp_path / "adapters", domain="legal")
    yield lm
    backend.close()


def test_chat_data_becomes_exactly_the_text_the_client_trains_on(tiny_lm):
    tokenizer = tiny_lm.client.tokenizer
    demo = dspy.Example(clause="Buyer pays in 30 days.", kind="payment", party="Buyer")
    inputs, outputs = {"clause": "Seller warrants the goods."}, {"kind": "warranty", "party": "Seller"}
    messages = ChatAdapter().format_finetune_data(Review, [demo], inputs, outputs)["messages"]
    prompt, completion = training_pair(tokenizer, Review, inputs, outputs, [demo])
    assert chat_pair(tokenizer, messages) == TrainingPair(prompt=prompt, completion=completion)
    with pytest.raises(AxError, match="no \\[\\[ ## field ## \\]\\] markers"):
        chat_pair(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "plain text"}])


def test_finetune_trains_a_lora_adapter_and_returns_an_lm_that_uses_it(tiny_lm, tmp_path):
    data = [ChatAdapter().format_finetune_data(Review, [], {"clause": f"Clause {i}."}, {"kind": "payment", "party": "Buyer"})
            for i in range(4)]
    job = tiny_lm.finetune(data, TrainDataFormat.CHAT, {"max_steps": 2})
    tuned = job.result()
    assert not isinstance(tuned, Exception), tuned
    assert tuned.adapter.startswith("ft-legal-") and tuned.model == f"ax/tiny@{tuned.adapter}" and job.status() == "succeeded"
    manifest = read_manifest(tmp_path / "adapters" / tuned.adapter)
    assert manifest.base_model_fingerprint == tiny_lm.client.base_fingerprint
    assert manifest.metrics["steps"] == 2 and manifest.metrics["train_examples"] == 4

    with dspy.context(lm=tuned):
        dspy.Predict(Review)(clause="The Tenant pays rent.")
    assert tiny_lm.usage_summary()["per_adapter"] == {tuned.adapter: 1}

    again = tiny_lm.finetune(data, TrainDataFormat.CHAT, {"max_steps": 2}).result()
    assert again.adapter == tuned.adapter  # same data and settings: the stored adapter is reused

    with pytest.raises(AxError, match="extra_setting"):
        raise tiny_lm.finetune(data, TrainDataFormat.CHAT, {"extra_setting": 1}).result()


def test_better_together_runs_gepa_then_bootstrap_finetune_on_the_ax_lm(tiny_lm):
    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=float(pred.kind == gold.kind), feedback=f"expected kind {gold.kind!r}")

    data = [dspy.Example(clause=f"Clause {i}: the Buyer pays.", kind="payment", party="Buyer").with_inputs("clause")
            for i in range(6)]
    program = dspy.Predict(Review)
    program.set_lm(tiny_lm)
    optimizer = dspy.BetterTogether(
        metric=metric,
        p=dspy.GEPA(metric=metric, max_metric_calls=8, reflection_lm=tiny_lm, num_threads=2),
        # The tiny random model gets nothing right; min_score=0 keeps its traces so there is data to train on.
        w=dspy.BootstrapFinetune(metric=passing(metric, min_score=0.0), train_kwargs={"max_steps": 1}, num_threads=2),
    )
    best = optimizer.compile(program, trainset=data[:4], valset=data[4:], strategy="p -> w", num_threads=2)

    assert not best.flag_compilation_error_occurred
    tuned = next(c["program"] for c in best.candidate_programs if c["strategy"] == "p -> w")
    assert tuned.predictors()[0].lm.adapter.startswith("ft-legal-")
    assert tuned.predictors()[0].lm.adapter in tiny_lm.client.adapters()


def test_passing_turns_a_feedback_metric_into_an_accept_decision():
    def metric(gold, pred, trace=None):
        return dspy.Prediction(score=0.0, feedback="wrong")

    assert bool(metric(None, None))  # why BootstrapFinetune needs `passing`: a Prediction is truthy
    assert passing(metric)(None, None) is False and passing(metric, min_score=0.0)(None, None) is True
