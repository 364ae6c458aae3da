"""The in-process backend: one base model, any number of LoRA adapters, batched generation.

Rows of one batch may name different adapters: the base GEMM runs once and each adapter on
its own run of rows (ax/inference/lora_rows.py; PEFT's mixed-adapter batches, `adapter_names`,
where that cannot serve), so no call ever runs on another call's adapter and nothing depends on
PEFT's global `set_adapter`. DoRA adapters cannot share a batch that way, so a batch holding one takes only
that adapter's rows. Rows join and leave the batch between decoding steps (ax/inference/rows.py),
a joining row's prompt fed in the same forward as the other rows' next tokens
(ax/inference/row_attention.py).

Prompts of one batch usually open with the same system prompt: its keys and values come from
a prefix cache (ax/inference/prefix_cache.py), so only each row's own tokens are prefilled.
Decoding writes into KV rooms reserved for the whole answer (ax/inference/kv_cache.py),
and on a CPU the fp32 linear layers run on oneDNN-packed weights (ax/inference/cpu_kernels.py).
A greedy row that repeats its prompt has the repeated tokens checked a few at a time, in one
step (prompt-lookup drafts, ax/inference/speculation.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import torch
from dspy.lm15 import ContextLengthError

from ax.adapter_store import (
    CONFIG_FILE, MANIFEST_FILE, adapter_fingerprint, check_base, check_unverified, check_weights, read_peft_config,
)
from ax.errors import AxError
from ax.inference.batcher import Batcher, Intake
from ax.inference.chat import render_chat
from ax.inference.constraints import ChoiceConstraint, Constraint, NumberConstraint, NumberListConstraint, TokenTables
from ax.inference.cpu_kernels import pack_linear_layers
from ax.inference.generation import Generation, GenerationParams, GenerationRequest
from ax.inference.lora_rows import LoraRows
from ax.inference.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, common_prefix_length
from ax.inference.rows import Batch, Row
from ax.inference.speculation import StepCosts
from ax.model import LoadedModel

BASE = "__base__"  # PEFT's name for "no adapter" in mixed batches


class PromptTooLong(AxError, ContextLengthError):
    """A prompt that fills the model's positions. DSPy reads it as its ContextWindowExceededError, on
    which dspy.ReAct drops the oldest turns of its trajectory and asks again."""


class LocalBackend:
    """Generation on a loaded model, batched across threads, with hot-swappable LoRA adapters."""

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int = 16, max_wait_s: float = 0.005,
                 prefix_cache: bool = True, prefix_cache_entries: int = 16, pack_weights: bool = True,
                 draft_tokens: int | None = None):
        self.loaded = loaded
        if pack_weights:
            pack_linear_layers(loaded.model)
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.tokenizer.padding_side = "left"
        self.base_fingerprint = loaded.fingerprint
        self.answer_fingerprint = loaded.answer_fingerprint
        self._tables = TokenTables(self.tokenizer)
        self._adapters: dict[str, dict[str, Any]] = {}
        self._lora_rows: LoraRows | None = None  # the model's LoRA layers, once an adapter is loaded
        self.prefix_cache = PrefixCache(prefix_cache_entries) if prefix_cache else None
        self.max_batch_size = max_batch_size
        self.batch_sizes: list[int] = []  # rows in each decoding step, for tests and benchmarks
        self.fed_tokens = 0  # tokens run through the model in decoding steps (prompts' unshared rest included)
        # Prompt-lookup tokens checked per row and step (0: none; ax/inference/speculation.py). On a GPU too
        # since a row's draft costs only its own tokens (ax/inference/row_attention.py): drafts pay there now,
        # where they did not while every step was padded to its widest draft (`python
        # bench/client_throughput.py --random-init 0.5b --device cuda` against `--draft-tokens 0`; README, Measured).
        if draft_tokens is not None and draft_tokens < 0:
            raise AxError(f"draft_tokens must be 0 (no drafts) or more, got {draft_tokens!r}")
        self.draft_tokens = 6 if draft_tokens is None else draft_tokens
        self.drafted_tokens = self.accepted_tokens = 0
        self.step_costs = StepCosts()
        self.batcher: Batcher[GenerationRequest, Generation] = Batcher(self._serve, max_wait_s=max_wait_s)

    @property
    def model_directory(self) -> Path:
        return Path(self.loaded.directory)

    @property
    def torch_model(self) -> Any:
        return self.model

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

    def load_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None:
        """Serve the PEFT adapter directory at `path` as `name` (in place of what `name` served), refusing
        one trained on another base model, and one whose base cannot be checked (no ax manifest) unless
        `allow_unverified`. Weights already served under another name are shared, not loaded again."""
        path = Path(path)
        peft_config = read_peft_config(path)
        weights = check_weights(path)
        if (path / MANIFEST_FILE).is_file():
            check_base(path, self.base_fingerprint, self.loaded.name)
        fingerprint = adapter_fingerprint(path)
        mismatch = self._shape_mismatch(weights)
        if mismatch:
            raise AxError(f"Adapter {path} (trained for {peft_config.get('base_model_name_or_path')!r}) does not fit "
                          f"base model {self.loaded.name} ({self.loaded.directory}): {mismatch}")
        # Which check vouched for the base model; "unverified" records an explicit opt-in.
        base_check = "ax_manifest" if (path / MANIFEST_FILE).is_file() else check_unverified(
            path, peft_config, self.loaded.name, self.loaded.directory, allow_unverified=allow_unverified)
        info = {"path": str(path), "fingerprint": fingerprint, "dora": bool(peft_config.get("use_dora")),
                "states_key": _states_key(fingerprint, path / CONFIG_FILE), "base_check": base_check}
        self.batcher.call_in_worker(lambda: self._attach(name, path, info))

    def ensure_adapter(self, name: str, path: str | Path, *, allow_unverified: bool = False) -> None:
        """`load_adapter`, unless `name` already serves the adapter at `path` (the same directory and weights)."""
        served = self._adapters.get(name)
        if served is None or served["path"] != str(path) or served["fingerprint"] != adapter_fingerprint(path):
            self.load_adapter(name, path, allow_unverified=allow_unverified)

    def unload_adapter(self, name: str) -> None:
        self._adapter_info(name)
        self.batcher.call_in_worker(lambda: self._release(self._adapters.pop(name)["states_key"]))

    def _release(self, slot: str) -> None:
        """Take PEFT's adapter `slot` out of the model once no name serves it."""
        if any(info["states_key"] == slot for info in self._adapters.values()):
            return
        if not self._adapters:
            # PEFT keeps a deleted last adapter as its active one, and the next load fails on it:
            # take the LoRA layers out and serve the plain base model again.
            self.model = self.model.unload()
            self._lora_rows = None
        else:
            self.model.delete_adapter(slot)
            self._lora_rows = LoraRows(self.model)

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
                features = _in_out_features(getattr(module, "base_layer", module))
                rows, cols = handle.get_slice(key).get_shape()
                expected = features[0] if ".lora_A." in key else features[1]
                actual = cols if ".lora_A." in key else rows
                if expected is not None and actual != expected:
                    return f"{key} has size {actual} where {module_name} has {expected}"
        return None

    def _attach(self, name: str, path: Path, info: dict[str, Any]) -> None:
        """Serve `info`'s adapter as `name`. PEFT holds each adapter once, named by its states key (its
        weights and config), whatever names serve it: an evaluation's name for an adapter a training
        run loaded under its own shares those weights."""
        from peft import PeftModel

        slot = info["states_key"]
        if not any(other["states_key"] == slot for other in self._adapters.values()):
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=slot)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=slot)
            self.model.eval()
            self._lora_rows = LoraRows(self.model)
        replaced = self._adapters.get(name)
        # Registered here, on the worker, so no batch sees the new weights under the old states key.
        self._adapters[name] = info
        if replaced is not None:
            self._release(replaced["states_key"])

    # -- generation -------------------------------------------------------------------------

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, request: GenerationRequest) -> Generation:
        if request.adapter is not None:
            self._adapter_info(request.adapter)
        return self.batcher.run(request)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    @torch.inference_mode()
    def _serve(self, intake: Intake[GenerationRequest]) -> None:
        """Decode rows until none is left: finished rows answer at once, and waiting requests take
        their places between steps, their prompts fed in the next step beside the others' tokens."""
        batch = Batch()
        waiting: list[tuple[GenerationRequest, Future]] = []  # taken, but may not share this batch
        while True:
            live = batch.live
            free = self.max_batch_size - len(live)
            candidates = waiting + intake.take(max(0, free - len(waiting)), wait=not live)
            names = [row.request.adapter or BASE for row in live]
            joining, waiting = [], []
            for job in candidates:
                name = job[0].adapter or BASE
                fits = len(joining) < free and self._may_share(names, name)
                (joining if fits else waiting).append(job)
                names += [name] if fits else []
            prefixes, deferred = self._admit(batch, joining) if joining else ([], [])
            waiting = deferred + waiting
            rows = batch.live
            if not rows:
                if not waiting:
                    return
                continue
            self.batch_sizes.append(len(rows))
            drafts = self._drafts(rows)
            started = time.perf_counter()
            logits = batch.step(self.model, lambda fed: self._adapter_rows([r.request.adapter or BASE for r in fed]),
                                drafts)
            argmax = logits.argmax(-1).tolist()  # on a GPU this waits for the step, so the time is the step's
            self.step_costs.record(batch.fed, time.perf_counter() - started)
            self.fed_tokens += batch.fed
            kept, start = [], 0
            for row, draft in zip(rows, drafts):
                width = 1 + len(draft)
                kept.append(row.take(logits[start:start + width], argmax[start:start + width], draft, self.tokenizer))
                start += width
                self.drafted_tokens += len(draft)
                self.accepted_tokens += kept[-1] - 1  # the pending token's states always stay
                if row.done:
                    row.future.set_result(row.result(self.tokenizer))
            batch.keep(kept)
            for row, key, prefix, computed in prefixes:
                self.prefix_cache.put(key, prefix, batch.states(row, len(prefix)), computed=computed)

    def _drafts(self, rows: list[Row]) -> list[list[int]]:
        """Each row's draft, cut to the width that should yield the most tokens a second."""
        drafts = [row.draft(self.draft_tokens) for row in rows]
        acceptance = (self.accepted_tokens + 1) / (self.drafted_tokens + 2)
        width = self.step_costs.best_width([len(draft) for draft in drafts], acceptance,
                                           sum(len(row.backlog) for row in rows))
        return [draft[: width - 1] for draft in drafts]

    def _may_share(self, names: list[str], name: str) -> bool:
        """DoRA adapters cannot share a PEFT mixed batch: a batch holding one holds only its rows."""
        dora = lambda n: self._adapters.get(n, {}).get("dora")  # noqa: E731
        return not names or ((not dora(name) and not any(dora(n) for n in names)) or set(names) == {name})

    def _constraint(self, params: GenerationParams) -> Constraint | None:
        if params.constraint == "choice":
            return ChoiceConstraint(self._tables, list(params.choices))
        if params.constraint in ("int", "float"):
            return NumberConstraint(self._tables, integer=params.constraint == "int")
        if params.constraint in ("int_list", "float_list"):
            return NumberListConstraint(self._tables, integer=params.constraint == "int_list")
        return None

    def _within_context(self, jobs: list[tuple[GenerationRequest, Future]],
                        ids: list[list[int]]) -> tuple[list[tuple[GenerationRequest, Future]], list[list[int]]]:
        """The jobs whose prompts leave the model positions, each budget cut to those left.

        A prompt that fills them is refused on its own future: past its learned positions GPT-2
        fails with an IndexError, which in the batch's forward would fail every row.
        """
        context = getattr(self.model.config, "max_position_embeddings", None)
        if not context:
            return jobs, ids
        kept = []
        for (request, future), prompt in zip(jobs, ids):
            room = context - len(prompt)
            if room < 1:
                future.set_exception(PromptTooLong(
                    f"The prompt has {len(prompt)} tokens and {self.loaded.name} has {context} positions "
                    f"(max_position_embeddings): shorten it (fewer demos, a smaller playbook) or use a "
                    f"model with a longer context."))
                continue
            if request.params.max_new_tokens > room:
                request = replace(request, params=replace(request.params, max_new_tokens=room))
            kept.append(((request, future), prompt))
        return [job for job, _ in kept], [prompt for _, prompt in kept]

    def _admit(self, batch: Batch, jobs: list[tuple[GenerationRequest, Future]]
               ) -> tuple[list[tuple[Row, str, list[int], int]], list[tuple[GenerationRequest, Future]]]:
        """Give new rows slots in `batch`, each with the states of the longest prefix the prefix cache
        serves. Returns the prefixes to cache once the next step has computed them (row, states key,
        prefix, tokens the step computes of it), and the jobs that wait a step to be served one."""
        ids = self.tokenizer([request.prompt for request, _ in jobs], add_special_tokens=False)["input_ids"]
        jobs, ids = self._within_context(jobs, ids)
        if not jobs:
            return [], []
        names = [request.adapter or BASE for request, _ in jobs]
        keys = [self._states_key(name) for name in names]
        lengths = self.prefix_cache.shared_lengths(ids, keys) if self.prefix_cache is not None else [0] * len(ids)
        prefixes: list[tuple[Row, str, list[int], int]] = []
        deferred = []
        computing: list[tuple[str, list[int]]] = []  # the prefixes this step computes past the cache, by states key
        for job, prompt, key, length in zip(jobs, ids, keys, lengths):
            request, future = job
            prefix = prompt[:length]
            past = self.prefix_cache.cached_length(key, prefix) if length else 0
            # A row fed what another joining row computes, past what the cache serves, waits a step for
            # the cache to serve it; a few such tokens it computes itself. So a shared prefix is computed
            # once, in the step beside the other rows' tokens, never in a forward of its own, which costs
            # a whole batch-1 step however few tokens it feeds (`python bench/decode_cost.py`).
            if any(other_key == key and common_prefix_length(prefix, other) >= past + MIN_PREFIX_TOKENS
                   for other_key, other in computing):
                deferred.append(job)
                continue
            past, served = self.prefix_cache.cached(key, prefix) if length else (0, None)
            row = Row(request, future, prompt, self._constraint(request.params), self._generator(request.params))
            # Room for the prompt, every token the row may generate and the draft checked after the last.
            batch.admit(row, served, len(prompt) + request.params.max_new_tokens + self.draft_tokens + 1)
            if length > past and (key, prefix) not in computing:
                prefixes.append((row, key, prefix, length - past))
                computing.append((key, prefix))
        return prefixes, deferred

    def _generator(self, params: GenerationParams) -> torch.Generator | None:
        if not params.sampled:
            return None
        generator = torch.Generator(device=self.model.device)
        generator.manual_seed(params.seed if params.seed is not None else 0)
        return generator

    @contextlib.contextmanager
    def _adapter_rows(self, names: list[str]) -> Iterator[dict[str, Any]]:
        """Within the block, a forward whose first dimension holds rows of adapters `names` (in runs)
        runs each on its own; yields the keyword arguments the forward takes for it."""
        if self._lora_rows is None:
            yield {}
            return
        slots = [BASE if name == BASE else self._states_key(name) for name in names]  # PEFT's names (_attach)
        if len(set(slots)) == 1 and self._adapters.get(names[0], {}).get("dora"):
            self.model.set_adapter(slots[0])  # safe: only this worker thread touches the model
            yield {}
        elif self._lora_rows.serves(slots):
            with self._lora_rows.runs(slots):
                yield {}
        else:
            yield {"adapter_names": slots}

    def _states_key(self, name: str) -> str:
        return "base" if name == BASE else self._adapter_info(name)["states_key"]

    def close(self) -> None:
        self.batcher.close()


def _in_out_features(module: Any) -> tuple[int | None, int | None]:
    """A layer's input and output sizes: nn.Linear's, GPT-2's Conv1D's (its weight is [in, out]),
    or unknown (PEFT checks other kinds itself)."""
    if hasattr(module, "in_features"):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        return tuple(module.weight.shape)
    return None, None


def _states_key(fingerprint: str, config: Path) -> str:
    """What an adapter's prefix states depend on: its weights and its config (lora_alpha scales them)."""
    return f"{fingerprint}-{hashlib.sha256(config.read_bytes()).hexdigest()[:16]}"
