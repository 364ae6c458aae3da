"""The remote backend against a stub that speaks vLLM's current API (structured_outputs, runtime LoRA loading)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Literal

import dspy
import pytest

import ax
from ax.client import Client
from ax.client.remote import NUMBER_REGEX, RemoteBackend
from ax.errors import AxError
from ax.inference.local import LocalBackend
from ax.model import load_model
from tiny_model import serve_openai_stub


class Triage(dspy.Signature):
    """Triage the message."""

    message: str = dspy.InputField()
    urgency: Literal["low", "medium", "high", "emergency"] = dspy.OutputField()
    minutes: int = dspy.OutputField()
    amount: float = dspy.OutputField()
    escalate: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    note: str = dspy.OutputField()


@pytest.fixture
def stub(tiny_model_dir):
    """A stub server on a local backend of the tiny model: (url, server, local backend)."""
    backend = LocalBackend(load_model(str(tiny_model_dir)))
    url, server = serve_openai_stub(backend)
    yield url, server, backend
    server.shutdown()
    backend.close()


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def completions(server) -> list[dict]:
    return [body for path, body in server.requests if path == "/v1/completions"]


def test_remote_backend_matches_local_through_an_openai_compatible_server(stub, tiny_adapters):
    url, server, local_backend = stub
    local_backend.load_adapter("alpha", tiny_adapters["alpha"])
    remote_backend = RemoteBackend(url, model="tiny", tokenizer=local_backend.tokenizer)
    remote_backend.load_adapter("alpha")  # already served, as with --lora-modules: nothing is posted
    local = Client(local_backend, model_name="tiny", cache=False).lm(max_tokens=60)
    remote = Client(remote_backend, model_name="tiny", cache=False).lm(max_tokens=60)
    predict = dspy.Predict(Triage)
    for adapter in (None, "alpha"):
        with dspy.context(lm=local.with_adapter(adapter)):
            expected = predict(message="chest pain since noon")
        with dspy.context(lm=remote.with_adapter(adapter)):
            got = predict(message="chest pain since noon")
        assert got.toDict() == expected.toDict()
    assert all(path == "/v1/completions" for path, _ in server.requests)
    with pytest.raises(AxError, match="Unknown adapter 'beta'"):
        remote.with_adapter("beta")


def test_literal_and_number_fields_are_constrained_through_structured_outputs(stub):
    url, server, local_backend = stub
    remote = Client(RemoteBackend(url, model="tiny", tokenizer=local_backend.tokenizer), model_name="tiny",
                    cache=False).lm(max_tokens=60)
    with dspy.context(lm=remote):
        dspy.Predict(Triage)(message="chest pain since noon")
    constraints = [body["structured_outputs"] for body in completions(server) if "structured_outputs" in body]
    assert {"choice": ["low", "medium", "high", "emergency"]} in constraints
    assert {"choice": ["True", "False"]} in constraints
    assert {"regex": NUMBER_REGEX["int"]} in constraints
    assert not any(key.startswith("guided_") for body in completions(server) for key in body)


@pytest.mark.parametrize("field, value", [
    ("guided_choice", ["yes", "no"]), ("guided_regex", r"\d+"), ("guided_json", {"type": "object"}),
    ("guided_grammar", "root ::= 'a'"), ("guided_decoding_backend", "xgrammar"),
])
def test_stub_refuses_the_fields_vllm_removed(stub, field, value):
    url, server, _ = stub
    status, body = post(f"{url}/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2, field: value})
    assert status == 400
    assert body["error"]["type"] == "BadRequestError"
    assert field in body["error"]["message"] and "structured_outputs" in body["error"]["message"]


def test_stub_checks_structured_outputs_like_vllm(stub):
    url, _, _ = stub
    status, _ = post(f"{url}/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2,
                                            "structured_outputs": {"choice": ["yes", "no"]}})
    assert status == 200
    status, body = post(f"{url}/completions", {"model": "tiny", "prompt": "hi",
                                               "structured_outputs": {"choices": ["a"]}})
    assert status == 400 and "choices" in body["error"]["message"]
    status, body = post(f"{url}/completions", {"model": "tiny", "prompt": "hi",
                                               "structured_outputs": {"choice": ["a"], "regex": "a"}})
    assert status == 400 and "one kind of constraints" in body["error"]["message"]


def test_lm_loads_an_adapter_into_the_running_server_once(stub, tiny_model_dir, tiny_adapters):
    url, server, local_backend = stub
    path = tiny_adapters["alpha"]
    lm = ax.LM(str(tiny_model_dir), remote=url, served_model="tiny", adapters={"legal": path}, cache=False,
               max_tokens=60)
    loads = [body for p, body in server.requests if p == "/v1/load_lora_adapter"]
    assert loads == [{"lora_name": "legal", "lora_path": str(path)}]
    assert local_backend.adapters() == ["legal"]

    lm.client.load_adapter("legal", path)  # the same adapter again: already served, nothing posted
    assert len(server.requests) == 1
    with dspy.context(lm=lm.with_adapter("legal")):
        dspy.Predict(Triage)(message="chest pain since noon")
    assert {body["model"] for body in completions(server)} == {"legal"}

    lm.client.unload_adapter("legal")
    assert server.requests[-1] == ("/v1/unload_lora_adapter", {"lora_name": "legal"})
    assert local_backend.adapters() == []


def test_a_remote_model_is_not_there_to_train(stub, tiny_model_dir):
    url, _, _ = stub
    lm = ax.LM(str(tiny_model_dir), remote=url, served_model="tiny", cache=False)
    with pytest.raises(AxError, match="LoRA training needs an in-process model"):
        lm.client.model_directory


def test_a_failed_load_is_one_line_naming_adapter_path_and_server_message(stub, tiny_model_dir, tmp_path):
    url, _, _ = stub
    missing = tmp_path / "no-adapter-here"
    with pytest.raises(AxError) as error:
        ax.LM(str(tiny_model_dir), remote=url, served_model="tiny", adapters={"legal": missing}, cache=False)
    message = str(error.value)
    assert "\n" not in message
    assert "'legal'" in message and str(missing) in message and "HTTP 400" in message
    assert "has no adapter_config.json" in message  # the server's own words
