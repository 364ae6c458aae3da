"""Training a LoRA adapter for a program, in-process, and loading it into the ax client that serves it.

Training data comes from the program as it stands (its current, possibly GEPA-evolved,
instructions and demos), in the exact text the client sends and generates:

- `traces`: run the program on the training examples and keep the calls of runs the metric
  accepted (score >= `min_score`), as DSPy's BetterTogether does after prompt optimization;
- `labels`: the gold outputs of every predictor whose inputs and outputs the examples label, as
  `ax train` does, plus, for a domain with a `teacher`, one scripted right run per example (every
  call of it, tool observations included); a 135M model gets few runs right, so this gives far
  more (and correct) data;
- `both` (the default): the union, without duplicates. Where the labels already hold every pair a
  trace could give (`labels_hold_traces`: a classification program whose predictors each answer the
  label alone, from a closed set, and are all labelled), the program is not run for traces.

A program of several predictors trains one adapter on all their calls (`adapters="shared"`), or
one adapter per predictor (`"per_predictor"`), each predictor then answering with its own.

For a classification domain the pairs are then balanced across its label (`balance_labels`), so
an adapter cannot score by always answering the majority label; the counts before and after are
recorded with the adapter.

The adapter trains on a fresh copy of the client's base model (PEFT wraps a model in place, and
the client's copy is serving), is stored in PEFT format with ax's manifest, and is loaded into the
client under its name, so `lm.with_adapter(name)` answers with it at once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ax.adapter_store import atomic_directory, read_manifest
from ax.adapters.config import LoraTrainingConfig, load_config
from ax.adapters.dataset import (
    LabelBalance, TrainingPair, balance_labels, label_balance, labelled_predictors, pairs_from_trace,
    predictor_label_pairs,
)
from ax.adapters.peft_model import load_training_base
from ax.client.client import AxLM, Client
from ax.errors import AxError
from ax.client.cost import Cost, CostMeter
from ax.optimizers.run_files import own_program
from ax.programs.domain import Domain
from ax.programs.metrics import score_of
from ax.programs.registry import get_domain

TrainingData = Literal["traces", "labels", "both"]
AdapterScope = Literal["shared", "per_predictor"]
NamedPairs = list[tuple[str | None, TrainingPair]]  # (the name of the predictor that made the call, its pair)


class LoraSettings(BaseModel):
    """Where a LoRA step's data comes from and how it trains (`overrides`: keys of lora_config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    data: TrainingData = "both"
    min_score: float = 1.0  # a trace counts as accepted from this metric score up
    config_path: Path | None = None  # lora_config.yaml; default: the one shipped with ax
    overrides: dict[str, Any] = Field(default_factory=dict)
    num_threads: int = Field(4, gt=0)
    balance_labels: bool = True  # classification domains: oversample rare labels to the commonest one's count
    adapters: AdapterScope = "shared"  # one adapter for all predictors' calls, or one per predictor

    @field_validator("overrides")
    @classmethod
    def _valid_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        # A misspelt key must fail where the preset is written, not after the model loaded and GEPA ran.
        LoraTrainingConfig().with_overrides(**overrides)
        return overrides

    def training_config(self, domain: str, seed: int) -> LoraTrainingConfig:
        return load_config(self.config_path, domain).with_overrides(**{"seed": seed, **self.overrides})


class AdapterRef(BaseModel):
    """A trained adapter: where it is, what identifies it, and what it was trained on."""

    name: str
    path: Path
    fingerprint: str
    base_model_fingerprint: str
    training_data: str
    train_examples: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    label_balance: LabelBalance | None = None  # classification domains: label counts before and after balancing


def _with_context(program: dspy.Module, examples: list[dspy.Example]) -> list[dspy.Example]:
    """Examples with the `context` a playbook-wrapped program (WithContext) would assemble for them."""
    if not hasattr(program, "assembler"):
        return examples
    return [e.copy(**{program.field: program.assembler(program.query(e.inputs()))}) for e in examples]


def label_pairs(program: dspy.Module, examples: list[dspy.Example], tokenizer: Any, name: str) -> NamedPairs:
    """Gold outputs in the program's current prompts, for each predictor the examples label (`labelled_predictors`)."""
    examples = _with_context(program, examples)
    labelled = labelled_predictors(own_program(program), examples[0]) if examples else []
    if not labelled:
        raise AxError(f"Domain {name!r}: no predictor has all its inputs and outputs in its examples; "
                      "train from traces of successful runs instead (pairs_from_trace).")
    groups = predictor_label_pairs(tokenizer, labelled, examples)
    return [(predictor, pair) for predictor, pairs in groups.items() for pair in pairs]


def teacher_pairs(program: dspy.Module, examples: list[dspy.Example], tokenizer: Any,
                  teacher: Callable[[dspy.Example], dspy.BaseLM]) -> NamedPairs:
    """Every call of one run per example under the domain's `teacher` (a scripted right run): gold
    whole traces, with the real tools' observations, in the program's current prompts."""
    names = {id(predictor): name for name, predictor in own_program(program).named_predictors()}
    pairs: NamedPairs = []
    for example in examples:
        with dspy.context(lm=teacher(example), trace=[]):
            program(**example.inputs())
            trace = list(dspy.settings.trace)
        pairs += zip([names.get(id(caller)) for caller, _, _ in trace], pairs_from_trace(tokenizer, trace))
    return pairs


def trace_pairs(program: dspy.Module, examples: list[dspy.Example], tokenizer: Any, *, metric: Callable[..., Any],
                min_score: float, num_threads: int) -> NamedPairs:
    """Every call of the program's runs (on the LM in the current dspy context) that the metric accepted.

    A call's pair is its predictor's prompt with the inputs it got (another step's output, a tool's
    observation in a ReAct trajectory), named after the predictor (None: one outside the program).
    """
    from dspy.teleprompt.bootstrap_trace import bootstrap_trace_data

    names = {id(predictor): name for name, predictor in own_program(program).named_predictors()}
    runs = bootstrap_trace_data(program=program, dataset=examples, metric=metric, num_threads=num_threads,
                                raise_on_error=False)
    pairs: NamedPairs = []
    for run in runs:
        if score_of(run.get("score")) >= min_score:
            callers = [names.get(id(caller)) for caller, _, _ in run["trace"]]
            pairs += zip(callers, pairs_from_trace(tokenizer, run["trace"]))
    return pairs


def class_label(domain: Domain) -> str | None:
    """The label field of a classification domain (an `ax.programs.Domain` or a registered one's name), else None.

    The first label field, the one a domain's splits are stratified by.
    """
    if isinstance(domain, str):
        try:
            domain = get_domain(domain)
        except AxError:
            return None  # a name no registry knows (e.g. a finetune job's): its task is unknown
    if getattr(domain, "task", None) != "classification":
        return None
    labels = domain.labels()
    return labels[0] if labels else None


def labels_hold_traces(program: dspy.Module, examples: list[dspy.Example], label: str | None, min_score: float) -> bool:
    """Whether every pair an accepted run's trace gives is one of the label pairs already.

    So it is when the examples label every predictor of the program and each answers only the class
    `label`, as a choice of a closed set (a Literal: constrained decoding writes one of its values
    exactly): a run the metric accepts (score >= 1; ax's label metrics accept the gold label alone) then
    answered each call with its gold value, in the prompt of that call's label pair."""
    if label is None or min_score < 1 or not examples:
        return False
    predictors = list(own_program(program).named_predictors())
    labelled = labelled_predictors(own_program(program), examples[0])
    return len(labelled) == len(predictors) > 0 and all(
        list(predictor.signature.output_fields) == [label]
        and typing.get_origin(predictor.signature.output_fields[label].annotation) is Literal
        for _, predictor in predictors)


def _named_pairs(program: dspy.Module, examples: list[dspy.Example], *, lm: AxLM, metric: Callable[..., Any],
                 settings: LoraSettings, name: str, domain: Domain) -> tuple[NamedPairs, int]:
    tokenizer = _training_client(lm).tokenizer
    pairs: NamedPairs = []
    rollouts = 0
    label = class_label(domain if domain is not None else name)
    if settings.data == "traces" or (settings.data == "both" and not labels_hold_traces(
            program, examples, label, settings.min_score)):
        with dspy.context(lm=lm):
            pairs += trace_pairs(program, examples, tokenizer, metric=metric, min_score=settings.min_score,
                                 num_threads=settings.num_threads)
        rollouts = len(examples)
    teacher = getattr(domain, "teacher", None)
    if settings.data in ("labels", "both") and teacher is not None:
        pairs += teacher_pairs(program, examples, tokenizer, teacher)
    if settings.data in ("labels", "both"):
        try:
            pairs += label_pairs(program, examples, tokenizer, name)
        except AxError:
            if settings.data == "labels" and teacher is None:
                raise  # with "both", a program whose outputs are unlabelled still trains on its traces
    return pairs, rollouts


def _balanced(pairs: list[TrainingPair], settings: LoraSettings, name: str, domain: Domain) -> list[TrainingPair]:
    pairs = list(dict.fromkeys(pairs))
    field = class_label(domain if domain is not None else name) if settings.balance_labels else None
    return balance_labels(pairs, field) if field else pairs


def collect_pairs(program: dspy.Module, examples: list[dspy.Example], *, lm: AxLM, metric: Callable[..., Any],
                  settings: LoraSettings, name: str, domain: Domain | None = None) -> tuple[list[TrainingPair], int]:
    """Training pairs per `settings.data`, of all predictors together, and how many program runs it took to get them.

    `domain`: the `ax.programs.Domain` (default: the registered domain `name`), whose label the
    pairs are balanced across when it is a classification one and `settings.balance_labels`.
    """
    named, rollouts = _named_pairs(program, examples, lm=lm, metric=metric, settings=settings, name=name, domain=domain)
    return _balanced([pair for _, pair in named], settings, name, domain), rollouts


def collect_predictor_pairs(program: dspy.Module, examples: list[dspy.Example], *, lm: AxLM,
                            metric: Callable[..., Any], settings: LoraSettings, name: str,
                            domain: Domain | None = None) -> tuple[dict[str, list[TrainingPair]], int]:
    """`collect_pairs` grouped by predictor name (as `named_predictors` of the domain's own program
    gives it); predictors with no pair are left out."""
    named, rollouts = _named_pairs(program, examples, lm=lm, metric=metric, settings=settings, name=name, domain=domain)
    groups: dict[str, list[TrainingPair]] = {}
    for predictor, pair in named:
        if predictor is None:
            raise AxError(f"Domain {name!r}: a traced call came from a predictor that is not one of the program's "
                          "named predictors, so it has no adapter of its own; use adapters='shared'")
        groups.setdefault(predictor, []).append(pair)
    return {predictor: _balanced(pairs, settings, name, domain) for predictor, pairs in groups.items()}, rollouts


def _training_client(lm: dspy.BaseLM) -> Client:
    """`lm`'s client, refused unless LoRA can train its model: an ax LM's, in process."""
    if not isinstance(lm, AxLM):
        raise AxError("LoRA training needs an ax LM on an in-process model (ax.LM(model)); "
                      f"{getattr(lm, 'model', lm)!r} does not run one")
    lm.client.model_directory  # a remote model's AxError, before any data is collected
    return lm.client


def run_precision(config: LoraTrainingConfig, lm: AxLM) -> LoraTrainingConfig:
    """The settings a LoRA step trains with on `lm`: bf16 'auto' follows a CPU model's compute dtype.

    A run that computes in bf16 on a CPU (the default where it has native bf16, or `--dtype bfloat16`)
    trains under bf16 autocast too, on the base's bf16 weights (adapter weights stay fp32): faster and
    with less peak memory there (`python bench/cpu_train_precision.py`). On a GPU 'auto' already means bf16.
    """
    model = _training_client(lm).torch_model
    if config.bf16 == "auto" and model.device.type == "cpu" and str(model.dtype) == "torch.bfloat16":
        return config.with_overrides(bf16=True)
    return config


def training_key(pairs: list[TrainingPair], config: LoraTrainingConfig, base_fingerprint: str) -> str:
    """What decides a trained adapter: its exact training text, its settings (seed included) and its base."""
    text = json.dumps([[p.prompt, p.completion] for p in pairs]) + config.model_dump_json() + base_fingerprint
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_into_client(lm: AxLM, pairs: list[TrainingPair], config: LoraTrainingConfig, *, name: str, target: Path,
                      domain: Domain, training_data: str, same_as: Path | None = None) -> tuple[AdapterRef, Cost]:
    """Train an adapter on `pairs`, store it at `target`, load it into `lm`'s client as `name`.

    `domain`: the `ax.programs.Domain` or its name; for a classification domain the adapter records
    its label's counts in `pairs` (`label_balance`).

    `same_as`: an adapter trained on the same `training_key`; seeded training on the same text gives
    the same weights, so it is copied instead of trained again (e.g. `gepa->lora` after a GEPA stage
    that accepted no proposal trains exactly what `lora` trained).
    """
    from ax.adapters.train import train_and_save  # torch and transformers: only a LoRA step that trains loads them

    client = _training_client(lm)
    if not pairs:
        raise AxError(f"No training data for adapter {name!r}: no run was accepted by the metric and no "
                      "predictor's outputs are labelled; use training data 'labels' or lower min_score")
    meter = CostMeter(lm)
    if same_as is not None:
        with atomic_directory(target) as staging:
            shutil.copytree(same_as, staging, dirs_exist_ok=True)
        manifest = read_manifest(target)
        metrics = manifest.metrics
        steps, tokens = 0, 0
    else:
        # in the answering model's dtype: an fp32 run trains in fp32, a bf16 one under autocast on bf16 weights
        base = load_training_base(str(client.model_directory), config,
                                  dtype=str(client.torch_model.dtype).removeprefix("torch."))
        if base.fingerprint != client.base_fingerprint:
            raise AxError(f"The model at {client.model_directory} changed since the client loaded it "
                          f"(fingerprint {base.fingerprint} != {client.base_fingerprint})")
        result, manifest = train_and_save(base, pairs, config, domain=getattr(domain, "name", domain), target=target,
                                          resume=True)
        del base
        metrics = result.metrics.model_dump(mode="json")
        steps, tokens = result.metrics.steps, result.metrics.tokens_seen
    client.load_adapter(name, target)
    field = class_label(domain)
    ref = AdapterRef(name=name, path=target, fingerprint=manifest.adapter_fingerprint,
                     base_model_fingerprint=manifest.base_model_fingerprint, training_data=training_data,
                     train_examples=metrics["train_examples"], metrics=metrics,
                     label_balance=label_balance(pairs, field) if field else None)
    cost = meter.stop().model_copy(update={"train_steps": steps, "train_tokens": tokens})
    return ref, cost
