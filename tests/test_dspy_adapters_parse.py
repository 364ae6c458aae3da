"""Output through the ax LM parses with DSPy's own adapters, including the JSONAdapter GEPA's default proposer uses.

Issue 23: `dspy.GEPA(reflection_lm=<ax LM>)` with DSPy's default instruction proposer got an
unparseable reflection answer in every iteration, because that proposer asks through a JSONAdapter
and the client only wrote ChatAdapter's markers.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Literal

import dspy
import pytest
from dspy.teleprompt.gepa.instruction_proposal import ProposeInstruction

from ax.client.decoding import DecodingSettings, decode, json_value
from ax.client.generation import Generation
from ax.client.schema import FieldSpec, output_schema
from ax.inference.rows import cut_at_stop


class Triage(dspy.Signature):
    """Triage the message."""

    message: str = dspy.InputField()
    urgency: Literal["low", "high"] = dspy.OutputField()
    minutes: int = dspy.OutputField()
    escalate: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    note: str = dspy.OutputField()


@pytest.fixture
def tiny_lm(tiny_client):
    tiny_client.max_field_tokens = 12  # short answers keep the tiny model fast
    return tiny_client.lm()


def test_the_json_adapter_prompt_names_the_same_fields_as_the_chat_one():
    json_schema = output_schema(dspy.JSONAdapter().format(Triage, [], {"message": "hi"}))
    chat_schema = output_schema(dspy.ChatAdapter().format(Triage, [], {"message": "hi"}))
    assert (json_schema.layout, chat_schema.layout) == ("json", "chat")
    assert json_schema.fields == chat_schema.fields
    assert json_schema.fields[0] == FieldSpec(name="urgency", kind="choice", choices=["low", "high"])
    assert [f.kind for f in json_schema.fields] == ["choice", "int", "choice", "json", "text"]


@pytest.mark.parametrize("adapter", [dspy.JSONAdapter(), dspy.ChatAdapter(), None], ids=["json", "chat", "default"])
def test_predict_parses_every_field_with_each_adapter(tiny_lm, adapter):
    with dspy.context(lm=tiny_lm, adapter=adapter):
        for message in ("The server room is on fire.", "Please reset my password."):
            pred = dspy.Predict(Triage)(message=message)
            assert pred.urgency in ("low", "high") and isinstance(pred.minutes, int)
            assert isinstance(pred.escalate, bool) and isinstance(pred.tags, list) and isinstance(pred.note, str)
    if isinstance(adapter, dspy.JSONAdapter):
        # One JSON object written by the client, not ChatAdapter's markers that JSONAdapter cannot read.
        answer = json.loads(tiny_lm.history[-1]["outputs"][0])
        assert list(answer) == ["urgency", "minutes", "escalate", "tags", "note"]


def test_gepa_default_proposer_parses_a_new_instruction_every_iteration(tiny_lm, tiny_client, caplog):
    reflection_lm = tiny_client.lm()  # its own view, so its history holds only the reflection calls

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        # The random model never writes the note, so no minibatch scores perfectly and every iteration reflects.
        return dspy.Prediction(score=float(pred.note == gold.note), feedback=f"the note should be {gold.note!r}")

    data = [dspy.Example(message=f"Ticket {i}: the printer is jammed.", urgency="low", minutes=5, escalate=False,
                         tags=["printer"], note="ok").with_inputs("message") for i in range(4)]
    program = dspy.Predict(Triage)
    program.set_lm(tiny_lm)
    optimizer = dspy.GEPA(metric=metric, max_metric_calls=12, reflection_lm=reflection_lm, num_threads=1,
                          reflection_minibatch_size=2, use_merge=False)
    with caplog.at_level(logging.INFO, logger="dspy.teleprompt.gepa"):
        optimizer.compile(program, trainset=data[:2], valset=data[2:])

    log = [record.getMessage() for record in caplog.records]
    iterations = [line for line in log if re.match(r"Iteration \d+: Selected program", line)]
    proposed = [line for line in log if re.match(r"Iteration \d+: Proposed new text", line)]
    failures = [line for line in log if "reflection failed" in line or "Exception" in line]
    assert len(iterations) >= 2 and not failures, failures
    assert len(proposed) == len(iterations)
    proposals = [call for call in reflection_lm.history if "new_instruction" in call["messages"][-1]["content"]]
    assert len(proposals) == len(iterations)
    for call in proposals:
        assert "Respond with a JSON object" in call["messages"][-1]["content"]  # DSPy's default: a JSONAdapter
        parsed = dspy.JSONAdapter().parse(ProposeInstruction, call["outputs"][0])
        assert isinstance(parsed["new_instruction"], str)


def test_a_json_text_value_ends_at_its_closing_quote_and_keeps_inner_quotes():
    """A model inside a JSON string may close it and go on with keys of its own, or quote a word."""
    class Scripted:
        def render(self, messages):
            return messages[-1]["content"]

        def generate(self, request):
            said = {"urgency": "high", "minutes": "15"}
            key = next((name for name in said if request.prompt.rstrip(' "').endswith(f'"{name}":')), None)
            text = said[key] if key else 'Answer "yes" when it is urgent",\n  "extra": 1\n}'
            return Generation(text=cut_at_stop(text, request.params.stop), prompt_tokens=3, completion_tokens=2)

    fields = [FieldSpec(name="urgency", kind="choice", choices=["low", "high"]), FieldSpec(name="minutes", kind="int"),
              FieldSpec(name="note", kind="text")]
    decoded = decode(Scripted(), [{"role": "user", "content": "ticket"}], fields, None, DecodingSettings(), "json")
    assert json.loads(decoded.text) == {"urgency": "high", "minutes": 15, "note": 'Answer "yes" when it is urgent'}
    # Escapes the model wrote inside the quotes are read as JSON, not kept as backslashes.
    escaped = json_value(FieldSpec(name="note", kind="text"), 'Step one\\nSay \\"hi\\""')
    assert json.loads(escaped) == 'Step one\nSay "hi"'
