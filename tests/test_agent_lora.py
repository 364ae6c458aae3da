"""LoRA on multi-predictor programs: every call of an accepted trace trains, in the prompt the client sent.

Issue 29: a program of several predictors (one called twice; a ReAct agent with a tool) trains
one adapter on all its calls, or one adapter per predictor, which then answers for its predictor
when the optimizer's later steps and the evaluator run the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import dspy
import pytest

from ax.adapter_store import adapter_fingerprint
from ax.adapters.dataset import domain_pairs, labelled_predictors
from ax.configuration import CONFIGURATIONS_FILE, load_configurations
from ax.evals.matrix_store import ResponseStore
from ax.evals.runner import domain_items, evaluate_configurations
from ax.optimizers.configurations import optimize
from ax.optimizers.lora_step import LoraSettings, collect_pairs, collect_predictor_pairs
from ax.optimizers.manifest import load_configuration, read_manifest
from ax.programs.domain import Domain
from ax.programs.metrics import label_metric
from ax.programs.modules import context_field
from test_optimize_run import TINY, tiny_lm  # noqa: F401  (tiny_lm is a fixture)

PASSAGES = {"refund": "Refunds are paid within 30 days.", "delivery": "Parcels arrive within 5 days."}
POLICY = "POLICY: refunds within 30 days"
TRACES = LoraSettings(data="traces", min_score=0.0, num_threads=1, balance_labels=False)


class Route(dspy.Signature):
    """Name the topic of the customer's question."""

    context: str = context_field()
    question: str = dspy.InputField()
    topic: Literal["refund", "delivery"] = dspy.OutputField()


class Reply(dspy.Signature):
    """Say whether the passage answers the question."""

    context: str = context_field()
    question: str = dspy.InputField()
    passage: str = dspy.InputField()
    answer: Literal["yes", "no"] = dspy.OutputField()


class Support(dspy.Module):
    """Route the question, then read the routed topic's passage and the other one: three calls."""

    def __init__(self) -> None:
        super().__init__()
        self.route = dspy.Predict(Route)
        self.reply = dspy.Predict(Reply)

    def forward(self, question: str, context: str = "") -> dspy.Prediction:
        topic = self.route(context=context, question=question).topic
        other = next(name for name in PASSAGES if name != topic)
        answers = [self.reply(context=context, question=question, passage=PASSAGES[name]).answer
                   for name in (topic, other)]
        return dspy.Prediction(topic=topic, answer=answers[0])


def support_domain(*, gold_passage: bool) -> Domain:
    """Examples labelling the route and the answer; with `gold_passage`, also the passage the reply reads."""
    topics = [("refund", "delivery")[i % 2] for i in range(20)]
    data = [dspy.Example(question=f"Question {i}: where is my {topic}?", topic=topic, answer="yes" if i % 3 else "no",
                         **({"passage": PASSAGES[topic]} if gold_passage else {}))
            for i, topic in enumerate(topics)]
    return Domain(name="tinysupport", program=Support, metric=label_metric("answer"), data=data,
                  input_fields=("question",), label_fields=("answer",))


def lookup(order: str = "") -> str:
    """Look up the store's refund policy."""
    return POLICY


def agent() -> dspy.ReAct:
    program = dspy.ReAct("question -> answer", tools=[lookup], max_iters=2)
    # String-typed args keep this random-weight model's samples free of a form feed, which DSPy's
    # line-based parsing reads back as a newline (a known one-character gap between sent and trained text).
    program.react.signature = program.react.signature.with_updated_fields("next_tool_args", type_=dict[str, str])
    return program


def accept_all(gold, pred, trace=None):
    return 1.0


@dataclass
class Sent:
    prompts: list[str] = field(default_factory=list)  # what the client rendered DSPy's messages to
    completions: list[str] = field(default_factory=list)  # what it handed back to DSPy


@pytest.fixture
def sent(monkeypatch) -> Sent:
    """Every call the client answers, in order, recorded where it renders the prompt and returns the completion."""
    import ax.client.engine as engine
    import ax.inference.local as local

    calls = Sent()
    render, decode = local.render_chat, engine.decode

    def recording_render(tokenizer, messages):
        calls.prompts.append(render(tokenizer, messages))
        return calls.prompts[-1]

    def recording_decode(*args, **kwargs):
        decoded = decode(*args, **kwargs)
        calls.completions.append(decoded.text)
        return decoded

    monkeypatch.setattr(local, "render_chat", recording_render)
    monkeypatch.setattr(engine, "decode", recording_decode)
    return calls


def test_label_pairs_come_only_from_predictors_whose_inputs_the_examples_hold(tiny_lm):
    tokenizer = tiny_lm.client.tokenizer
    example = support_domain(gold_passage=False).examples()[0]
    assert [name for name, _ in labelled_predictors(Support(), example)] == ["route"]
    assert [name for name, _ in labelled_predictors(Support(), example.copy(passage="p"))] == ["route", "reply"]
    assert labelled_predictors(agent(), example) == []  # the trajectory comes from running it

    train, _ = domain_pairs(tokenizer, support_domain(gold_passage=False))
    assert train and all("[[ ## passage ## ]]" not in pair.prompt for pair in train)
    train, _ = domain_pairs(tokenizer, support_domain(gold_passage=True))
    replies = [pair for pair in train if "[[ ## passage ## ]]" in pair.prompt]
    assert len(replies) == len(train) // 2
    assert all(any(f"[[ ## passage ## ]]\n{text}" in pair.prompt for text in PASSAGES.values()) for pair in replies)


def test_a_trace_of_three_calls_trains_on_the_prompts_the_client_sent(tiny_lm, sent):
    program = Support()
    example = dspy.Example(question="Where is my refund?", answer="yes").with_inputs("question")
    pairs, rollouts = collect_pairs(program, [example], lm=tiny_lm, metric=accept_all, settings=TRACES, name="support")

    assert rollouts == 1 and len(pairs) == 3
    assert [pair.prompt for pair in pairs] == sent.prompts
    assert [pair.completion for pair in pairs] == sent.completions
    groups, _ = collect_predictor_pairs(program, [example], lm=tiny_lm, metric=accept_all, settings=TRACES,
                                        name="support")
    assert groups == {"route": pairs[:1], "reply": pairs[1:]}


def test_a_react_trace_trains_on_the_tool_observations_it_saw(tiny_lm, sent):
    questions = ["Can I get a refund?", "What is the policy?", "Is it late?"]
    examples = [dspy.Example(question=q).with_inputs("question") for q in questions]
    program = agent()
    pairs, _ = collect_pairs(program, examples, lm=tiny_lm, metric=accept_all, settings=TRACES, name="agent")

    assert [pair.prompt for pair in pairs] == sent.prompts
    assert [pair.completion for pair in pairs] == sent.completions
    assert any(f"[[ ## observation_0 ## ]]\n{POLICY}" in pair.prompt for pair in pairs)
    groups, _ = collect_predictor_pairs(program, examples, lm=tiny_lm, metric=accept_all, settings=TRACES,
                                        name="agent")
    assert set(groups) == {"react", "extract.predict"}
    assert sorted(groups["react"] + groups["extract.predict"], key=pairs.index) == pairs


def test_per_predictor_adapters_are_trained_recorded_and_answer_when_evaluated(tiny_lm, tmp_path, monkeypatch):
    from ax.inference.local import LocalBackend

    domain = support_domain(gold_passage=True)
    preset = TINY.model_copy(update={"lora": TINY.lora.model_copy(update={"adapters": "per_predictor"})})
    (manifest,) = optimize(domain, configs=["lora"], seeds=[0], preset=preset, run_dir=tmp_path, lm=tiny_lm,
                           context=False, show_progress=False)

    assert manifest.adapter is None and manifest.adapter_scope == "per_predictor"
    adapters = manifest.predictor_adapters
    assert set(adapters) == {"route", "reply"} and adapters["reply"].name == "tinysupport-lora-s0-reply"
    assert all(adapter_fingerprint(ref.path) == ref.fingerprint for ref in adapters.values())
    assert read_manifest(tmp_path / "tinysupport" / "seed-0" / "configs" / "lora") == manifest
    assert manifest.steps[-1].summary["adapters"] == "per_predictor"

    program, lm = load_configuration(manifest, tiny_lm, domain)
    assert lm.adapter is None and program.route.lm.adapter == adapters["route"].name
    copied = program.deepcopy()  # GEPA copies programs per candidate: the LMs on predictors are shared views
    assert copied.reply.lm.adapter == adapters["reply"].name and copied.reply.lm.client is tiny_lm.client

    (configuration,) = load_configurations(tmp_path / CONFIGURATIONS_FILE).configurations
    assert configuration.lora and configuration.adapter is None
    assert configuration.predictor_adapters == {name: ref.path for name, ref in adapters.items()}
    (lora_step,) = [s for s in configuration.steps if s.step == "lora"]
    assert lora_step.detail.startswith("one adapter per predictor") and "route:" in lora_step.detail
    assert "?" not in lora_step.detail

    requests = []
    generate = LocalBackend.generate

    def recording(self, request):
        requests.append(request)
        return generate(self, request)

    monkeypatch.setattr(LocalBackend, "generate", recording)
    summary = evaluate_configurations([configuration], domain, lm=tiny_lm, store=ResponseStore(tmp_path, create=True),
                                      items=domain_items(domain, "test", 2), num_threads=1)
    assert summary.new_cells == {configuration.name: 2}
    # each predictor answers with its own adapter, served under the name training loaded it by (loaded once)
    expected = {doc: adapters[name].name for name, doc in (("route", Route.__doc__), ("reply", Reply.__doc__))}
    used = {doc: {r.adapter for r in requests if doc in r.prompt} for doc in expected}
    assert used == {doc: {name} for doc, name in expected.items()}
