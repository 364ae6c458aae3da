"""The DSPy engine: `complete(Request) -> Response`, DSPy 3.4's supported way to plug in an LM.

One engine serves one adapter (or the base model) of a shared client; the client owns the
backend, cache and usage log, so engines are cheap views and `lm.with_adapter(...)` is free.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Request, Response, TextPart, Usage, response_to_events

from ax.client.decoding import Decoded, DecodingSettings, decode
from ax.client.schema import OutputSchema, output_schema
from ax.client.usage import CallUsage

if TYPE_CHECKING:
    from ax.client.client import Client


def request_messages(request: Request) -> list[dict[str, str]]:
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return messages


class AxEngine:
    def __init__(self, client: Client, adapter: str | None = None):
        self.client = client
        self.adapter = adapter

    def complete(self, request: Request) -> Response:
        validate_request(request)
        started = time.perf_counter()
        messages = request_messages(request)
        schema = output_schema(messages) if self.client.structured else OutputSchema()
        config = request.config
        settings = DecodingSettings(
            max_text_tokens=self.client.max_field_tokens,
            max_tokens=config.max_tokens,
            temperature=config.temperature or 0.0,
            top_p=config.top_p,
            seed=config.seed,
            stop=tuple(config.stop),
        )
        backend = self.client.backend
        key = self.client.cache.key(
            base=backend.answer_fingerprint, adapter=backend.adapter_fingerprint(self.adapter),
            messages=messages, schema=schema.model_dump(), settings=settings.__dict__,
        )
        cached = self.client.cache.get(key)
        if cached is None:
            decoded = decode(backend, messages, schema.fields, self.adapter, settings, schema.layout)
            self.client.cache.put(key, decoded)
        else:
            decoded = cached
        self.client.usage.record(CallUsage(
            adapter=self.adapter, prompt_tokens=decoded.prompt_tokens, completion_tokens=decoded.completion_tokens,
            latency_s=time.perf_counter() - started, cached=cached is not None,
        ))
        return _response(decoded, self.client.model_name)

    def stream(self, request: Request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        """Engines are views: the client owns the model and closes it."""


def _response(decoded: Decoded, model: str) -> Response:
    return Response(
        id=None, model=model, message=Message.assistant([TextPart(decoded.text)]), finish_reason="stop",
        usage=Usage(input_tokens=decoded.prompt_tokens, output_tokens=decoded.completion_tokens,
                    total_tokens=decoded.prompt_tokens + decoded.completion_tokens),
    )
