"""DSPy's fine-tuning interface for the ax LM: `dspy.BootstrapFinetune` and `dspy.BetterTogether` run on ax unchanged.

DSPy fine-tunes through `lm.finetune(...)`, which calls `lm.provider.finetune(job, model,
train_data, train_data_format, train_kwargs)` in a thread and expects a new model name back.
DSPy's own local provider needs an SGLang server and does a full fine-tune; `AxProvider` trains
a LoRA adapter in-process with ax.adapters' trainer, on exactly the text the ax client sends
and generates, and loads it into the client:

    lm = finetunable(ax.LM())              # lm.provider = AxProvider(lm)
    program.set_lm(lm)
    dspy.BetterTogether(metric=metric, p=dspy.GEPA(metric=metric, ...),
                        w=dspy.BootstrapFinetune(metric=passing(metric))).compile(program, ...)

`train_kwargs` are LoRA settings (keys of lora_config.yaml, e.g. {"max_steps": 50, "r": 8}).
DSPy builds the fine-tuned LM as `lm.copy(model=new_name)`, which keeps the engine of the LM
it copied; `AxTrainingJob` hands back `lm.with_adapter(adapter)` instead, the LM that really
answers with the new adapter.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dspy.clients.provider import Provider, TrainingJob
from dspy.clients.utils_finetune import TrainDataFormat

from ax.adapter_store import MANIFEST_FILE, default_store_root, read_manifest
from ax.adapters.config import LoraTrainingConfig, load_config
from ax.adapters.dataset import TrainingPair, data_hash
from ax.client.prompting import completion_text, render_chat
from ax.errors import AxError
from ax.optimizers.lora_step import run_precision, train_into_client

if TYPE_CHECKING:
    from ax.client.client import AxLM

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n*\Z)", re.S)


class AxTrainingJob(TrainingJob):
    """A DSPy training job whose result is the ax LM answering with the new adapter."""

    adapter: str | None = None

    def set_result(self, result: Any) -> None:
        if self.adapter is not None and hasattr(result, "with_adapter"):
            result = result.with_adapter(self.adapter)
        super().set_result(result)

    def status(self) -> str:
        if not self.done():
            return "running"
        return "failed" if isinstance(self.result(), Exception) else "succeeded"


def chat_pair(tokenizer: Any, messages: list[dict[str, str]]) -> TrainingPair:
    """A DSPy chat-format example ({"messages": [..., assistant]}) as the client's prompt and completion."""
    *prompt, answer = messages
    if answer.get("role") != "assistant" or not prompt:
        raise AxError("A chat training example must end with the assistant's message after at least one prompt message")
    fields = [(name, value) for name, value in _FIELD.findall(answer["content"]) if name != "completed"]
    if not fields:
        raise AxError(f"The assistant message has no [[ ## field ## ]] markers (not ChatAdapter format): "
                      f"{answer['content'][:200]!r}")
    return TrainingPair(prompt=render_chat(tokenizer, prompt), completion=completion_text(fields))


class AxProvider(Provider):
    """Fine-tunes the ax LM it belongs to with LoRA, in-process; adapters are kept under `store`.

    An adapter's name is a hash of its training data and settings, so rerunning the same
    fine-tune reuses the stored adapter instead of training it again.
    """

    def __init__(self, lm: AxLM, *, config: LoraTrainingConfig | None = None, store: str | Path | None = None,
                 domain: str = "dspy"):
        super().__init__()
        self.finetunable = True
        self.TrainingJob = AxTrainingJob
        self.lm = lm
        self.config = config or load_config()
        self.store = Path(store) if store is not None else default_store_root()
        self.domain = domain

    def finetune(self, job: AxTrainingJob, model: str, train_data: list[dict[str, Any]],
                 train_data_format: TrainDataFormat | str | None, train_kwargs: dict[str, Any] | None = None) -> str:
        if TrainDataFormat(train_data_format) != TrainDataFormat.CHAT:
            raise AxError(f"AxProvider trains on chat data (DSPy's ChatAdapter/JSONAdapter); got {train_data_format!r}")
        config = run_precision(self.config.with_overrides(**(train_kwargs or {})), self.lm)
        tokenizer = self.lm.client.tokenizer
        pairs = [chat_pair(tokenizer, example["messages"]) for example in train_data]
        key = json.dumps([data_hash(pairs), config.model_dump(mode="json")], sort_keys=True)
        name = f"ft-{self.domain}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        target = self.store / name
        if name not in self.lm.client.adapters():
            if (target / MANIFEST_FILE).is_file() and read_manifest(target).training_data_hash == data_hash(pairs):
                self.lm.client.load_adapter(name, target)
            else:
                train_into_client(self.lm, pairs, config, name=name, target=target, domain=self.domain,
                                  training_data="dspy")
        job.adapter = name
        return self.lm.with_adapter(name).model


def finetunable(lm: Any, **provider_options: Any) -> Any:
    """Give an ax LM the `AxProvider`, so that `lm.finetune(...)` and DSPy's weight optimizers work; returns `lm`."""
    lm.provider = AxProvider(lm, **provider_options)
    return lm
