"""A tiny random-init chat model for tests and examples that must not download anything.

`make_tiny_model(path)` writes a complete HF model directory (Llama architecture, a byte-level
BPE tokenizer trained on the spot, a ChatML chat template like SmolLM2's) in about a second.
Its outputs are nonsense, but deterministic for a given seed, which is all the plumbing
tests need.
"""

from __future__ import annotations

from pathlib import Path

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
                      dora: bool = False) -> Path:
    """Write a random (non-zero) LoRA adapter for `model_dir` in PEFT's format and return its path.

    A fresh LoRA is an exact no-op (B = 0); this one starts from random A and B with a large
    scale, so different seeds answer clearly differently, as tests of adapter routing need.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=4, lora_alpha=4 * scale, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                        init_lora_weights=False, use_dora=dora)
    model = get_peft_model(base, config)
    model.save_pretrained(path)
    return Path(path)


def serve_openai_stub(backend, host: str = "127.0.0.1"):
    """Serve `backend` as a minimal OpenAI-compatible /v1/completions server on loopback.

    It speaks the subset of vLLM's API the remote client uses: the model name selects the
    adapter (as vLLM's --lora-modules does), and `guided_choice` / `guided_regex` constrain the
    value. Returns (base_url, server); call server.shutdown() when done.
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ax.client.generation import GenerationParams, GenerationRequest
    from ax.client.remote import NUMBER_REGEX

    number_kinds = {regex: kind for kind, regex in NUMBER_REGEX.items()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):  # noqa: N802 - http.server's naming
            if not self.path.endswith("/completions"):
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model = body.get("model", "")
            adapter = model if model in backend.adapters() else None
            stop = body.get("stop") or ()
            params = GenerationParams(
                max_new_tokens=int(body.get("max_tokens") or 16), temperature=float(body.get("temperature") or 0.0),
                top_p=body.get("top_p"), seed=body.get("seed"), stop=tuple([stop] if isinstance(stop, str) else stop),
                constraint="choice" if body.get("guided_choice") else number_kinds.get(body.get("guided_regex")),
                choices=tuple(body.get("guided_choice") or ()),
            )
            result = backend.generate(GenerationRequest(body["prompt"], adapter, params))
            payload = json.dumps({
                "id": "cmpl-stub", "object": "text_completion", "created": 0, "model": model,
                "choices": [{"text": result.text, "index": 0, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                          "total_tokens": result.prompt_tokens + result.completion_tokens},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{host}:{server.server_address[1]}/v1", server
