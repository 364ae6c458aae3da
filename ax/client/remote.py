"""The remote backend: the same client API on an OpenAI-compatible server (e.g. vLLM), through litellm.

vLLM serves LoRA adapters as model names (`--lora-modules legal=/path/to/adapter`), so the
adapter a call names becomes the model it asks for. Prompts are rendered here with the base
model's own chat template and sent to the completions endpoint, so decoding is the same
field-by-field scheme as in process; vLLM's `guided_choice` and `guided_regex` carry the
choice and number constraints. The server batches; this side only keeps requests concurrent.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ax.client.generation import Generation, GenerationParams, GenerationRequest
from ax.client.prompting import render_chat
from ax.errors import AxError

NUMBER_REGEX = {"int": r"-?\d{1,3}(,\d{3})*|-?\d+", "float": r"-?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?"}
NUMBER_REGEX |= {f"{kind}_list": rf"\[ *({pattern})?( *, *({pattern}))* *\]" for kind, pattern in
                 {"int": r"-?\d+", "float": r"-?\d+(\.\d+)?"}.items()}


class RemoteBackend:
    def __init__(self, api_base: str, *, model: str, tokenizer: Any, adapters: list[str] | None = None,
                 api_key: str = "EMPTY", timeout_s: float = 120.0):
        self.api_base = api_base.rstrip("/")
        self.model = model
        self.tokenizer = tokenizer
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._adapters = list(adapters or [])
        self.base_fingerprint = "remote-" + hashlib.sha256(f"{self.api_base}|{model}".encode()).hexdigest()[:12]

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_fingerprint(self, adapter: str | None) -> str:
        # The server's weights are out of reach: the served name is the best identity there is.
        if adapter is None:
            return "base"
        if adapter not in self._adapters:
            raise AxError(f"Unknown adapter {adapter!r}; adapters served at {self.api_base}: {self.adapters() or 'none'}")
        return f"served:{adapter}"

    def load_adapter(self, name: str, path: Any = None) -> None:
        """Register an adapter the server already serves under `name` (vLLM: --lora-modules name=path)."""
        if name not in self._adapters:
            self._adapters.append(name)

    def unload_adapter(self, name: str) -> None:
        self._adapters.remove(name)

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


def _wire_params(params: GenerationParams) -> dict[str, Any]:
    wire: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature}
    if params.stop:
        wire["stop"] = list(params.stop)
    if params.top_p is not None:
        wire["top_p"] = params.top_p
    if params.seed is not None:
        wire["seed"] = params.seed
    if params.constraint == "choice":
        wire["extra_body"] = {"guided_choice": list(params.choices)}
    elif params.constraint in NUMBER_REGEX:
        wire["extra_body"] = {"guided_regex": NUMBER_REGEX[params.constraint]}
    return wire
