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
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
