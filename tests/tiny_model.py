"""A tiny random-init chat model for tests and benchmarks that must not download anything.

`make_tiny_model(path)` writes a complete HF model directory (Llama architecture, a byte-level
BPE tokenizer trained on the spot, a ChatML chat template like SmolLM2's) in about a second.
Its outputs are nonsense, but deterministic for a given seed, which is all the plumbing
tests need.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ax.adapter_store import save_adapter
from ax.client.generation import GenerationParams, GenerationRequest
from ax.client.remote import NUMBER_REGEX
from ax.errors import AxError
from ax.model import weights_fingerprint

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "[[ ## answer ## ]]", "[[ ## reasoning ## ]]", "[[ ## completed ## ]]", "[[ ## question ## ]]",
    "The quick brown fox jumps over the lazy dog.", "Your input fields are:", "Your output fields are:",
    "positive negative neutral high medium low yes no true false True False",
    "0 1 2 3 4 5 6 7 8 9 10 100 3.14 -2.5 42", "What is the capital of France? Paris.",
    "Respond with the corresponding output fields, starting with the field",
    "the contract clause binds the tenant and the landlord", "revenue grew while costs fell",
    "patient reports chest pain and shortness of breath", "customer wants a refund for the order",
]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_model(path: str | Path, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                    vocab_size: int = 512) -> Path:
    """Write a random-init Llama chat model with its tokenizer to `path` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # A wide init makes the random model's greedy output vary with the prompt (the default
        # 0.02 collapses every prompt to the same token), so tests can tell answers apart.
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def randomize_lora_b(model, std: float = 0.1) -> None:
    """Draw `model`'s LoRA B matrices from N(0, std) (from torch's current seed): fresh ones are zero,
    which makes a LoRA an exact no-op and gives its A matrices no gradient."""
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, std)


def make_tiny_adapter(model_dir: str | Path, path: str | Path, *, seed: int = 1, scale: float = 16.0,
                      dora: bool = False, rank: int = 4, manifest: bool = True) -> Path:
    """Write a random (non-zero) LoRA adapter for `model_dir` and return its path.

    A fresh LoRA is an exact no-op (B = 0); this one starts from random A and B with a large
    scale, so different seeds answer clearly differently, as tests of adapter routing need. With
    `manifest` it is saved as ax saves a trained adapter (PEFT's files and an ax manifest naming
    the base weights' fingerprint); without, in PEFT's format alone, as adapters from elsewhere come.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM


    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=rank, lora_alpha=4 * scale, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                        init_lora_weights=False, use_dora=dora)
    model = get_peft_model(base, config)
    if manifest:
        save_adapter(model, path, domain="test", base_name=Path(model_dir).name,
                     base_fingerprint=weights_fingerprint(Path(model_dir)))
    else:
        model.save_pretrained(path)
    return Path(path)


def serve_openai_stub(backend, host: str = "127.0.0.1"):
    """Serve `backend` as a minimal vLLM-like OpenAI-compatible server on loopback.

    It speaks the part of vLLM's current API (v0.12 and later) the remote client uses:
    /v1/completions, where the model name selects the adapter and `structured_outputs` (vLLM's
    StructuredOutputsParams) constrains the value, and /v1/load_lora_adapter and
    /v1/unload_lora_adapter (runtime LoRA updating), which load into and unload from `backend`.
    Request bodies are checked against vLLM's request models and refused with a 400 in vLLM's
    error shape. vLLM itself only logs and ignores a field it does not know, such as the
    `guided_*` fields removed in v0.12.0; here any such field is refused, so a request vLLM
    would run unconstrained fails a test instead. Every request is recorded, in order, as
    (path, body) in `server.requests`. Returns (base_url, server); call server.shutdown() when done.
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


    number_kinds = {regex: kind for kind, regex in NUMBER_REGEX.items()}
    removed = ("guided_choice", "guided_regex", "guided_json", "guided_grammar", "guided_whitespace_pattern",
               "guided_decoding_backend")

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class StructuredOutputs(Strict):  # vllm.sampling_params.StructuredOutputsParams
        json_schema: str | dict | None = Field(None, alias="json")
        regex: str | None = None
        choice: list[str] | None = None
        grammar: str | None = None
        json_object: bool | None = None
        disable_any_whitespace: bool = False
        disable_additional_properties: bool = False
        whitespace_pattern: str | None = None
        structural_tag: str | None = None

        @model_validator(mode="after")
        def one_kind(self):
            if sum(v is not None for v in (self.json_schema, self.regex, self.choice)) > 1:
                raise ValueError("You can only use one kind of constraints for structured outputs "
                                 "('json', 'regex' or 'choice').")
            return self

    class CompletionRequest(Strict):  # the OpenAI fields of vLLM's CompletionRequest, and structured_outputs
        model: str | None = None
        prompt: str | list[str]
        echo: bool | None = False
        frequency_penalty: float | None = None
        logit_bias: dict[str, float] | None = None
        logprobs: int | None = None
        max_tokens: int | None = 16
        n: int = 1
        presence_penalty: float | None = None
        seed: int | None = None
        stop: str | list[str] | None = None
        stream: bool | None = False
        stream_options: dict | None = None
        suffix: str | None = None
        temperature: float | None = None
        top_p: float | None = None
        user: str | None = None
        structured_outputs: StructuredOutputs | None = None

    class LoadLoRAAdapterRequest(Strict):
        lora_name: str
        lora_path: str

    class UnloadLoRAAdapterRequest(Strict):
        lora_name: str
        lora_int_id: int | None = None

    def complete(body: CompletionRequest) -> dict:
        structured = body.structured_outputs or StructuredOutputs()
        if structured.regex is not None and structured.regex not in number_kinds:
            raise ValueError(f"this stub only serves ax's number regexes, not {structured.regex!r}")
        if structured.json_schema is not None or structured.grammar is not None:
            raise ValueError("this stub serves only 'choice' and 'regex' structured outputs")
        stop = body.stop or ()
        params = GenerationParams(
            max_new_tokens=body.max_tokens or 16, temperature=body.temperature or 0.0, top_p=body.top_p,
            seed=body.seed, stop=tuple([stop] if isinstance(stop, str) else stop),
            constraint="choice" if structured.choice else number_kinds.get(structured.regex),
            choices=tuple(structured.choice or ()),
        )
        adapter = body.model if body.model in backend.adapters() else None
        result = backend.generate(GenerationRequest(body.prompt, adapter, params))
        return {
            "id": "cmpl-stub", "object": "text_completion", "created": 0, "model": body.model,
            "choices": [{"text": result.text, "index": 0, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens},
        }

    def load(body: LoadLoRAAdapterRequest) -> str:
        if body.lora_name in backend.adapters():
            raise ValueError(f"The lora adapter '{body.lora_name}' has already been loaded.")
        backend.load_adapter(body.lora_name, body.lora_path)
        return f"Success: LoRA adapter '{body.lora_name}' added successfully."

    def unload(body: UnloadLoRAAdapterRequest) -> str:
        backend.unload_adapter(body.lora_name)
        return f"Success: LoRA adapter '{body.lora_name}' removed successfully."

    routes = {"/v1/completions": (CompletionRequest, complete), "/v1/load_lora_adapter": (LoadLoRAAdapterRequest, load),
              "/v1/unload_lora_adapter": (UnloadLoRAAdapterRequest, unload)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):  # noqa: N802 - http.server's naming
            if self.path not in routes:
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append((self.path, body))
            model, handle = routes[self.path]
            stale = [name for name in removed if name in body]
            try:
                if stale:
                    raise ValueError(f"{', '.join(stale)} was removed in vLLM v0.12.0; use structured_outputs")
                self.reply(200, handle(model.model_validate(body)))
            except (ValueError, AxError) as exc:  # pydantic's ValidationError is a ValueError
                message = str(exc) if not isinstance(exc, ValidationError) else "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                self.reply(400, {"error": {"message": message, "type": "BadRequestError", "param": None,
                                           "code": 400}})

        def reply(self, status: int, payload) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((host, 0), Handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{host}:{server.server_address[1]}/v1", server


def cache_argument(model: Any) -> str:
    """The keyword a model's forward takes transformers' KV cache by: `cache` where this version of
    transformers has it (5.24 deprecates `past_key_values`), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def prefilled(model: Any, tokens: list[int]) -> Any:
    """transformers' own cache after `tokens`, every column kept (a sliding-window layer's too, as
    the client's rooms keep them): the reference the client's states are checked against."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    cache.layers = [DynamicLayer() if isinstance(layer, DynamicLayer) else layer for layer in cache.layers]
    if tokens:
        import torch

        model(input_ids=torch.tensor([tokens]), use_cache=True, **{cache_argument(model): cache})
    return cache
