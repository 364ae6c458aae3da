"""The in-process backend: one base model, any number of LoRA adapters, batched generation.

Rows of one batch may name different adapters: PEFT's mixed-adapter batches
(`generate(..., adapter_names=[...])`) run the base GEMM once and each adapter on its own rows,
so no call ever runs on another call's adapter and nothing depends on PEFT's global
`set_adapter`. DoRA adapters cannot share a batch that way, so batches holding one are split
per adapter.

Prompts of one batch usually open with the same system prompt: its keys and values come from
a prefix cache (ax/client/prefix_cache.py), so only each row's own tokens are prefilled.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from ax.client.batcher import Batcher
from ax.client.constraints import (ChoiceConstraint, Constraint, NumberConstraint, NumberListConstraint, RowConstraints,
                                   TokenTables)
from ax.client.generation import Generation, GenerationParams, GenerationRequest
from ax.client.prefix_cache import KV, PrefixCache
from ax.client.prompting import render_chat
from ax.errors import AxError
from ax.model import LoadedModel

BASE = "__base__"  # PEFT's name for "no adapter" in mixed batches


class _RowStops(StoppingCriteria):
    """Per-row stop: the row's token budget is spent or one of its stop strings appeared."""

    def __init__(self, tokenizer: Any, params: list[GenerationParams], prompt_length: int):
        self.tokenizer = tokenizer
        self.params = params
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        generated = input_ids.shape[1] - self.prompt_length
        for row, params in enumerate(self.params):
            if generated >= params.max_new_tokens:
                done[row] = True
            elif params.stop:
                tail = self.tokenizer.decode(input_ids[row, max(self.prompt_length, input_ids.shape[1] - 8):])
                done[row] = any(stop in tail for stop in params.stop)
        return done


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    positions = [text.find(s) for s in stop if s in text]
    return text[: min(positions)] if positions else text


class LocalBackend:
    """Generation on a loaded model, batched across threads, with hot-swappable LoRA adapters."""

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int = 16, max_wait_s: float = 0.005,
                 prefix_cache: bool = True, prefix_cache_entries: int = 16):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.tokenizer.padding_side = "left"
        self.base_fingerprint = loaded.fingerprint
        self._tables = TokenTables(self.tokenizer)
        self._adapters: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.prefix_cache = PrefixCache(prefix_cache_entries) if prefix_cache else None
        self.batcher: Batcher[GenerationRequest, Generation] = Batcher(
            self._run_batch, max_batch_size=max_batch_size, max_wait_s=max_wait_s)

    # -- adapters ---------------------------------------------------------------------------

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_fingerprint(self, adapter: str | None) -> str:
        if adapter is None:
            return "base"
        return self._adapter_info(adapter)["fingerprint"]

    def _adapter_info(self, adapter: str) -> dict[str, Any]:
        try:
            return self._adapters[adapter]
        except KeyError:
            raise AxError(f"Unknown adapter {adapter!r}; loaded adapters: {self.adapters() or 'none'}") from None

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a PEFT adapter directory under `name`, refusing one trained on another base model."""
        from ax.adapters.store import CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE, adapter_fingerprint, check_base

        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise AxError(f"Adapter directory {path} has no {CONFIG_FILE} (not a PEFT adapter).")
        # An adapter trained elsewhere has no ax manifest: its base can only be checked by PEFT's shapes.
        if (path / MANIFEST_FILE).is_file():
            check_base(path, self.base_fingerprint, self.loaded.name)
        fingerprint = adapter_fingerprint(path)
        peft_config = json.loads((path / CONFIG_FILE).read_text())
        mismatch = self._shape_mismatch(path / WEIGHTS_FILE)
        if mismatch:
            raise AxError(f"Adapter {path} (trained for {peft_config.get('base_model_name_or_path')!r}) does not fit "
                          f"base model {self.loaded.name} ({self.loaded.directory}): {mismatch}")
        info = {"path": str(path), "fingerprint": fingerprint, "dora": bool(peft_config.get("use_dora")),
                "states_key": _states_key(fingerprint, path / CONFIG_FILE)}
        self.batcher.call_in_worker(lambda: self._attach(name, path, info))

    def unload_adapter(self, name: str) -> None:
        self._adapter_info(name)
        self.batcher.call_in_worker(lambda: self._detach(name))
        del self._adapters[name]

    def _detach(self, name: str) -> None:
        if len(self._adapters) == 1:
            # PEFT keeps a deleted last adapter as its active one, and the next load fails on it:
            # take the LoRA layers out and serve the plain base model again.
            self.model = self.model.unload()
        else:
            self.model.delete_adapter(name)

    def _shape_mismatch(self, weights: Path) -> str | None:
        """Why the adapter's LoRA matrices cannot sit on this base model, checked before PEFT touches it.

        PEFT injects LoRA layers into the base model before loading weights, so a failed load
        would leave the shared base model altered; reading shapes first keeps it untouched.
        """
        from safetensors import safe_open

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():
                if not key.endswith((".lora_A.weight", ".lora_B.weight")):
                    continue
                module_name = key.removeprefix("base_model.model.").rsplit(".lora_", 1)[0]
                try:
                    module = base.get_submodule(module_name)
                except AttributeError:
                    return f"the base model has no module {module_name!r}"
                module = getattr(module, "base_layer", module)
                rows, cols = handle.get_slice(key).get_shape()
                expected = module.in_features if ".lora_A." in key else module.out_features
                actual = cols if ".lora_A." in key else rows
                if actual != expected:
                    return f"{key} has size {actual} where {module_name} has {expected}"
        return None

    def _attach(self, name: str, path: Path, info: dict[str, Any]) -> None:
        from peft import PeftModel

        if name in self._adapters:
            self.model.delete_adapter(name)
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(path), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
        self.model.eval()
        # Registered here, on the worker, so no batch sees the new weights under the old states key.
        self._adapters[name] = info

    # -- generation -------------------------------------------------------------------------

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, request: GenerationRequest) -> Generation:
        if request.adapter is not None:
            self._adapter_info(request.adapter)
        return self.batcher.run(request)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _run_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        results: dict[int, Generation] = {}
        for group in self._groups(requests):
            for index, generation in zip(group, self._generate_rows([requests[i] for i in group])):
                results[index] = generation
        return [results[i] for i in range(len(requests))]

    def _groups(self, requests: list[GenerationRequest]) -> list[list[int]]:
        """Greedy rows batch together; sampled rows run alone so a seed alone decides their draws."""
        greedy = [i for i, r in enumerate(requests) if not r.params.sampled]
        sampled = [[i] for i, r in enumerate(requests) if r.params.sampled]
        if any(self._adapters.get(requests[i].adapter or "", {}).get("dora") for i in greedy):
            by_adapter: dict[str | None, list[int]] = {}
            for i in greedy:
                by_adapter.setdefault(requests[i].adapter, []).append(i)
            return list(by_adapter.values()) + sampled
        return ([greedy] if greedy else []) + sampled

    def _constraint(self, params: GenerationParams) -> Constraint | None:
        if params.constraint == "choice":
            return ChoiceConstraint(self._tables, list(params.choices))
        if params.constraint in ("int", "float"):
            return NumberConstraint(self._tables, integer=params.constraint == "int")
        if params.constraint in ("int_list", "float_list"):
            return NumberListConstraint(self._tables, integer=params.constraint == "int_list")
        return None

    @torch.inference_mode()
    def _generate_rows(self, requests: list[GenerationRequest]) -> list[Generation]:
        rows = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        names = [r.adapter or BASE for r in requests]
        shared = self.prefix_cache.shared_length(rows) if self.prefix_cache is not None else 0
        layout = self._layout(rows, shared)
        prompt_length = layout["input_ids"].shape[1]
        params = [r.params for r in requests]
        constraints = [self._constraint(p) for p in params]
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(p.max_new_tokens for p in params),
            "stopping_criteria": StoppingCriteriaList([_RowStops(self.tokenizer, params, prompt_length)]),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if shared:
            kwargs["past_key_values"] = self._prefix_states(rows[0][:shared], names)
        if any(constraints):
            kwargs["logits_processor"] = [RowConstraints(constraints, prompt_length)]
        if params[0].sampled:  # sampled requests always run alone (see _groups)
            torch.manual_seed(params[0].seed if params[0].seed is not None else 0)
            kwargs.update(do_sample=True, temperature=params[0].temperature, top_p=params[0].top_p or 1.0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        output = self.model.generate(**layout, **kwargs, **self._adapter_kwargs(names))
        results = []
        for row, p in enumerate(params):
            tokens = output[row, prompt_length:].tolist()
            tokens = tokens[: p.max_new_tokens]
            if self.tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(self.tokenizer.eos_token_id)]
            text = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), p.stop)
            results.append(Generation(text=text, prompt_tokens=len(rows[row]), completion_tokens=len(tokens)))
        return results

    def _layout(self, rows: list[list[int]], shared: int) -> dict[str, torch.Tensor]:
        """Rows as [shared prefix][pads][own tokens], with the attention mask 0 on the pads.

        The cached prefix states fill the first `shared` positions of every row, so pads can only
        sit between them and each row's own tokens; generate() then prefills only the tokens past
        the cache's length. With nothing shared this is plain left padding.

        Positions are the mask's running sum, so a row's own tokens continue at `shared` whatever
        its padding. They are passed, not left to generate(): it derives the same ones only when
        the model's forward signature names position_ids, and a wrapped forward (a profiler's,
        say) silently got plain ranges, which set a padded row's tokens apart from its prefix.
        """
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        ids = [row[:shared] + [pad] * (width - len(row)) + row[shared:] for row in rows]
        mask = torch.tensor([[1] * shared + [0] * (width - len(row)) + [1] * (len(row) - shared) for row in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.model.device
        return {"input_ids": torch.tensor(ids, device=device), "attention_mask": mask.to(device),
                "position_ids": positions.to(device)}

    def _adapter_kwargs(self, names: list[str]) -> dict[str, Any]:
        """What a forward or generate call needs to run each row on its own adapter."""
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            return {}
        if len(set(names)) == 1 and self._adapters.get(names[0], {}).get("dora"):
            self.model.set_adapter(names[0])  # safe: only this worker thread touches the model
            return {}
        return {"adapter_names": names}

    def _prefix_states(self, prefix: list[int], names: list[str]) -> DynamicCache:
        """A generate() cache holding the prefix's states for each row, each under its row's adapter."""
        per_adapter = {name: self.prefix_cache.states(self._states_key(name), prefix, partial(self._extend, name))
                       for name in dict.fromkeys(names)}
        layers = zip(*(per_adapter[name] for name in names))  # per layer: each row's (keys, values)
        return DynamicCache([(torch.cat([k for k, _ in layer]), torch.cat([v for _, v in layer])) for layer in layers],
                            config=self.model.config)

    def _states_key(self, name: str) -> str:
        return "base" if name == BASE else self._adapter_info(name)["states_key"]

    def _extend(self, name: str, past: KV | None, tokens: list[int]) -> KV:
        """The states of `past` followed by `tokens`, on adapter `name` (`past` itself is left as it was)."""
        cache = DynamicCache(past, config=self.model.config)
        ids = torch.tensor([tokens], device=self.model.device)
        self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1,
                   **self._adapter_kwargs([name]))
        return tuple((layer.keys, layer.values) for layer in cache.layers)

    def close(self) -> None:
        self.batcher.close()


def _states_key(fingerprint: str, config: Path) -> str:
    """What an adapter's prefix states depend on: its weights and its config (lora_alpha scales them)."""
    return f"{fingerprint}-{hashlib.sha256(config.read_bytes()).hexdigest()[:16]}"
