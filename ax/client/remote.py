"""The remote backend: the same client API on an OpenAI-compatible server (e.g. vLLM), through litellm.

vLLM serves LoRA adapters as model names, so the adapter a call names becomes the model it asks
for. An adapter given by path is loaded into the running server through vLLM's runtime LoRA
updating (`POST /v1/load_lora_adapter`, server started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True);
one given without a path must already be served (`--lora-modules name=path`). Prompts are
rendered here with the base model's own chat template and sent to the completions endpoint, so
decoding is the same field-by-field scheme as in process; `structured_outputs` carries the
choice and number constraints. The server batches; this side only keeps requests concurrent.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ax.client.generation import Generation, GenerationParams, GenerationRequest
from ax.errors import AxError
from ax.inference.chat import render_chat

NUMBER_REGEX = {"int": r"-?\d{1,3}(,\d{3})*|-?\d+", "float": r"-?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?"}
NUMBER_REGEX |= {f"{kind}_list": rf"\[ *({pattern})?( *, *({pattern}))* *\]" for kind, pattern in
                 {"int": r"-?\d+", "float": r"-?\d+(\.\d+)?"}.items()}


class RemoteBackend:
    def __init__(self, api_base: str, *, model: str, tokenizer: Any, api_key: str = "EMPTY",
                 timeout_s: float = 120.0):
        self.api_base = api_base.rstrip("/")
        self.model = model
        self.tokenizer = tokenizer
        self.api_key = api_key
        self.timeout_s = timeout_s
        # name -> the path this backend loaded it from at runtime, or None for one the server already serves
        self._adapters: dict[str, str | None] = {}
        self.base_fingerprint = "remote-" + hashlib.sha256(f"{self.api_base}|{model}".encode()).hexdigest()[:12]
        self.answer_fingerprint = self.base_fingerprint

    @property
    def model_directory(self) -> Path:
        raise self._not_in_process()

    @property
    def torch_model(self) -> Any:
        raise self._not_in_process()

    def _not_in_process(self) -> AxError:
        return AxError(f"LoRA training needs an in-process model (ax.LM(model)); {self.model!r} is served "
                       f"at {self.api_base}")

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_fingerprint(self, adapter: str | None) -> str:
        # The server's weights are out of reach: the served name and its path are the best identity there is.
        if adapter is None:
            return "base"
        if adapter not in self._adapters:
            raise AxError(f"Unknown adapter {adapter!r}; adapters served at {self.api_base}: {self.adapters() or 'none'}")
        path = self._adapters[adapter]
        return f"served:{adapter}" + (f"@{path}" if path else "")

    def load_adapter(self, name: str, path: str | Path | None = None, *, allow_unverified: bool = False) -> None:
        """Serve `name`: with a path (as the server sees it), load it into the running server once;
        without one, the server already serves it (vLLM: --lora-modules name=path). The files are the
        server's, which ax cannot read, so `allow_unverified` changes nothing here."""
        path = None if path is None else str(path)
        if name in self._adapters:
            if path is not None and self._adapters[name] != path:
                raise AxError(f"Adapter {name!r} is already served at {self.api_base} from {self._adapters[name]}; "
                              f"unload it before loading {path}")
            return
        if path is not None:
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": path},
                       failure=f"Loading adapter {name!r} from {path}")
        self._adapters[name] = path

    # Loading is already idempotent here: a name served from the same path is left as it is.
    ensure_adapter = load_adapter

    def unload_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise AxError(f"Unknown adapter {name!r}; adapters served at {self.api_base}: {self.adapters() or 'none'}")
        # Only an adapter this backend loaded is taken off the server; one from --lora-modules stays served.
        if self._adapters[name] is not None:
            self._post("unload_lora_adapter", {"lora_name": name}, failure=f"Unloading adapter {name!r}")
        del self._adapters[name]

    def _post(self, endpoint: str, body: dict[str, Any], *, failure: str) -> None:
        request = urllib.request.Request(
            f"{self.api_base}/{endpoint}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s):
                pass
        except urllib.error.HTTPError as exc:
            raise AxError(f"{failure} at {self.api_base} failed (HTTP {exc.code}): "
                          f"{_server_message(exc.read())}") from None
        except OSError as exc:  # refused connection, timeout, unknown host
            raise AxError(f"{failure} at {self.api_base} failed: {exc}") from None

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, request: GenerationRequest) -> Generation:
        import litellm

        if request.adapter is not None:
            self.adapter_fingerprint(request.adapter)
        params = request.params
        try:
            response = litellm.text_completion(
                model=f"openai/{request.adapter or self.model}", api_base=self.api_base, api_key=self.api_key,
                prompt=request.prompt, timeout=self.timeout_s, **_wire_params(params),
            )
        except Exception as exc:  # litellm wraps transport and HTTP errors in many types
            raise AxError(f"Remote model at {self.api_base} failed ({request.adapter or self.model}): {exc}") from exc
        usage = response.usage
        return Generation(text=response.choices[0].text, prompt_tokens=usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens)

    def close(self) -> None:
        """Nothing is held open: litellm manages its own connections."""


def _server_message(body: bytes) -> str:
    """The message of a vLLM error body ({"error": {"message": ...}}; older servers: {"message": ...}), on one line."""
    text = body.decode(errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        text = str(error.get("message", text) if isinstance(error, dict) else error)
    return " ".join(text.split()) or "no message"


def _wire_params(params: GenerationParams) -> dict[str, Any]:
    wire: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature}
    if params.stop:
        wire["stop"] = list(params.stop)
    if params.top_p is not None:
        wire["top_p"] = params.top_p
    if params.seed is not None:
        wire["seed"] = params.seed
    # vLLM >= 0.12: CompletionRequest.structured_outputs, a StructuredOutputsParams (openai/completion/protocol.py).
    if params.constraint == "choice":
        wire["extra_body"] = {"structured_outputs": {"choice": list(params.choices)}}
    elif params.constraint in NUMBER_REGEX:
        wire["extra_body"] = {"structured_outputs": {"regex": NUMBER_REGEX[params.constraint]}}
    return wire
