"""A scripted LM for exercising optimizers offline: its answers are a Python function of the prompt.

`DummyLM` replays a fixed list of answers, so under GEPA's threads which call gets which answer
is a race. `rule_lm(fn)` instead answers each call with `fn(instructions, inputs)`, deterministic
whatever the order: a task model that does better when its instructions say the right thing, a
reflection model that proposes a given instruction, or one that never improves anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import dspy
from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

from ax.client.engine import request_messages
from ax.client.schema import output_fields

Rule = Callable[[str, dict[str, str]], dict[str, str]]
_INPUT = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
_OBJECTIVE = "your objective is:"


class RuleEngine:
    """A DSPy engine answering ChatAdapter prompts with `rule(instructions, inputs)`."""

    def __init__(self, rule: Rule, name: str = "rule"):
        self.rule, self.name = rule, name

    def complete(self, request):
        validate_request(request)
        messages = request_messages(request)
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        instructions = system.split(_OBJECTIVE, 1)[-1].strip()
        inputs = dict(_INPUT.findall(messages[-1]["content"]))
        values = self.rule(instructions, inputs)
        wanted = [spec.name for spec in output_fields(messages)] or list(values)
        text = "".join(f"[[ ## {name} ## ]]\n{values.get(name, '')}\n\n" for name in wanted) + "[[ ## completed ## ]]"
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Response(id=None, model=self.name, message=Message.assistant([TextPart(text)]), finish_reason="stop",
                        usage=Usage(input_tokens=prompt_tokens, output_tokens=len(text.split()),
                                    total_tokens=prompt_tokens + len(text.split())))

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def rule_lm(rule: Rule, name: str = "rule") -> dspy.LM:
    """A `dspy.LM` (cache off) whose every answer is `rule(instructions, inputs)`."""
    return dspy.LM(f"ax-test/{name}", engine=RuleEngine(rule, name), cache=False)
