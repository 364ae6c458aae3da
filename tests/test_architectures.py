"""Models of other architectures decode through the client as transformers' own generate does alone,
rows joining, sharing prefixes and drafting (those with sliding-window layers with prompts and
answers longer than the window), and train adapters that the client serves as plain PEFT does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from ax.adapters.config import LoraTrainingConfig
from ax.adapters.dataset import TrainingPair
from ax.adapters.train import train_and_save
from ax.client.generation import GenerationParams, GenerationRequest
from ax.client.prompting import completion_text, render_chat
from ax.errors import AxError
from ax.inference.local import LocalBackend
from ax.inference.row_attention import sliding_window
from ax.model import load_model

WINDOW = 8
SHAPES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=2048, tie_word_embeddings=True, initializer_range=0.5)
CONFIGS = {  # name: (config class, its own settings, the window of its sliding layers or None)
    "gpt2": ("GPT2Config", dict(n_embd=64, n_layer=2, n_head=4, n_positions=1024, initializer_range=0.5), None),
    "qwen3": ("Qwen3Config", dict(head_dim=16, **SHAPES), None),
    "phi3": ("Phi3Config", SHAPES, None),
    "olmo2": ("Olmo2Config", SHAPES, None),
    "mistral": ("MistralConfig", dict(sliding_window=WINDOW, **SHAPES), WINDOW),  # every layer windowed
    "qwen2": ("Qwen2Config", dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, **SHAPES),
              WINDOW),  # one full layer, one windowed
    "gemma2": ("Gemma2Config", dict(head_dim=16, sliding_window=WINDOW, **SHAPES), WINDOW),
    "gemma3": ("Gemma3TextConfig", dict(sliding_window=WINDOW, layer_types=["sliding_attention", "full_attention"],
                                        head_dim=16, **SHAPES), WINDOW),
    "cohere2": ("Cohere2Config", dict(sliding_window=WINDOW, **SHAPES), WINDOW),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model_dir(request, tiny_model_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    class_name, settings, _ = CONFIGS[request.param]
    config = getattr(transformers, class_name)(**settings, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return request.param, path


def _generate_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_other_architectures_answer_in_batches_as_transformers_does_alone(model_dir):
    name, path = model_dir
    # The demo's "assistant" turn gives every answer a draft to check (the random model refuses most).
    system = ("<|im_start|>system\nthe tenant pays the landlord and the clause binds them both<|im_end|>\n"
              "<|im_start|>assistant\nthe landlord pays<|im_end|>\n")
    prompts = [f"{system}<|im_start|>user\ncase {i}: pays {i * 7} pays {i * 7} pays<|im_end|>\n<|im_start|>assistant\n"
               for i in range(10)]
    budgets = [20, 3, 14, 6, 1]
    loaded = load_model(str(path), dtype="float32")  # on a GPU too: bf16 rounding follows a batch's shapes
    assert sliding_window(loaded.model.config) == CONFIGS[name][2]
    expected = [_generate_alone(loaded.model, loaded.tokenizer, p, budgets[i % len(budgets)])
                for i, p in enumerate(prompts)]
    requests = [GenerationRequest(p, None, GenerationParams(max_new_tokens=budgets[i % len(budgets)]))
                for i, p in enumerate(prompts)]
    backend = LocalBackend(loaded, max_batch_size=3, max_wait_s=0.05, draft_tokens=6)
    backend.step_costs.line = lambda: (1.0, 0.0)  # columns cost nothing: every draft is fed whole
    with ThreadPoolExecutor(10) as pool:
        got = [g.text for g in pool.map(backend.generate, requests)]
    assert got == expected
    assert max(backend.batch_sizes) == 3 and backend.prefix_cache.reused_tokens > 0
    assert backend.drafted_tokens > backend.accepted_tokens, "no draft column was ever refused"
    assert [backend.generate(r).text for r in requests] == expected  # one at a time, from cached prefixes
    backend.close()
    whole = LocalBackend(loaded, max_batch_size=3, max_wait_s=0.05, prefix_cache=False)  # left pads before prompts
    with ThreadPoolExecutor(10) as pool:
        assert [g.text for g in pool.map(whole.generate, requests)] == expected
    whole.close()


def test_adapters_train_and_serve_on_other_architectures(model_dir, tmp_path):
    from peft import PeftModel

    name, path = model_dir
    load = lambda: load_model(str(path), dtype="float32")  # noqa: E731
    tokenizer = load().tokenizer
    pairs = [TrainingPair(prompt=render_chat(tokenizer, [{"role": "user", "content": f"Is {i} odd?"}]),
                          completion=completion_text([("answer", "yes" if i % 2 else "no")])) for i in range(8)]
    config = LoraTrainingConfig(max_steps=3, per_device_batch_size=4, learning_rate=1e-2, dev_fraction=0.0,
                                save_steps=100, logging_steps=50, batching="packing")
    train_and_save(load(), pairs, config, domain="d", target=tmp_path / "d")
    backend = LocalBackend(load())
    backend.load_adapter("d", tmp_path / "d")
    got = backend.generate(GenerationRequest(pairs[0].prompt, "d", GenerationParams(max_new_tokens=8))).text
    backend.close()
    plain = PeftModel.from_pretrained(load().model, str(tmp_path / "d")).eval()
    assert got == _generate_alone(plain, tokenizer, pairs[0].prompt, 8)


def test_a_prompt_past_the_positions_is_refused_and_a_budget_past_them_cut(tiny_model_dir, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = "the tenant pays the landlord"
    length = len(tokenizer.encode(prompt, add_special_tokens=False))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=length + 6, vocab_size=len(tokenizer),
                               eos_token_id=tokenizer.eos_token_id)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    backend = LocalBackend(load_model(str(tmp_path)), max_batch_size=4, max_wait_s=0.2)
    longer = prompt + " and the tenant pays again"
    requests = [GenerationRequest(prompt, None, GenerationParams(max_new_tokens=20)),
                GenerationRequest(longer, None, GenerationParams())]
    with ThreadPoolExecutor(2) as pool:  # taken together: the refused prompt fails alone
        answer, refused = [pool.submit(backend.generate, r) for r in requests]
        assert 0 < answer.result().completion_tokens <= 6  # the 20 asked for would run past the positions
        with pytest.raises(AxError, match=f"prompt has {len(tokenizer.encode(longer, add_special_tokens=False))} "
                                          f"tokens.* {length + 6} positions"):
            refused.result()
    backend.close()
