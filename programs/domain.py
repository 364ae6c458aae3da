"""A domain: a program to optimize, a metric with feedback, and examples in fixed splits.

Built-in domains and users' domains are the same object, so everything downstream
(GEPA, LoRA training, the IRT evaluator) takes a `Domain` and never special-cases one:

    Domain(name="tickets", program=TicketRouter, metric=label_metric("queue"), data="tickets.jsonl")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from ax.errors import AxError
from ax.names import NAME_PATTERN
from ax.programs.generation import META_FIELDS, UNRATED, Splits, split_examples
from ax.programs.loading import load_examples
from ax.programs.modules import CONTEXT, program_inputs

TaskKind = Literal["classification", "extraction", "computation"]
# The built-ins' names (each a module of ax.programs, loaded by the registry), which no other domain may take.
BUILTIN_DOMAINS = (
    "financial", "legal", "healthcare", "marketing", "manufacturing", "real_estate",
    "education", "data_analytics", "operations", "customer_service", "research", "specialized",
)
AGENT_DOMAINS = ("support_agent", "claim_check", "tool_agent")


class Domain(BaseModel):
    """One task family. `program` is a factory (a `dspy.Module` subclass is one); calling it gives a fresh program.

    `data` is a list of `dspy.Example`, a `Splits`, a JSONL/CSV path, or a zero-argument
    callable returning either (built-ins generate their `Splits` lazily). Examples without ids or
    difficulty get `NAME-000000` ids and "unrated"; input fields default to the program's
    inputs and label fields to everything else an example carries.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(pattern=NAME_PATTERN)
    program: Callable[[], dspy.Module]
    metric: Callable[..., Any]
    data: Any
    description: str = ""
    task: TaskKind = "classification"
    input_fields: tuple[str, ...] | None = None
    label_fields: tuple[str, ...] | None = None
    # A scripted LM per example that answers every call as a right run would (e.g. dspy.utils.DummyLM
    # with the gold tool calls): LoRA's label data then holds whole runs, tool observations included,
    # for predictors whose prompts the examples' fields cannot fill (a ReAct trajectory).
    teacher: Callable[[dspy.Example], dspy.BaseLM] | None = None

    _examples: list[dspy.Example] | None = PrivateAttr(default=None)
    _splits: Splits | None = PrivateAttr(default=None)
    _given_sizes: dict[str, int] | None = PrivateAttr(default=None)

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as error:
            raise AxError(f"invalid domain {fields.get('name')!r}: {error}") from None

    @field_validator("program", mode="before")
    @classmethod
    def _program_factory(cls, program: Any) -> Any:
        # An instance is accepted too: each call then hands out an independent copy.
        return program.deepcopy if isinstance(program, dspy.Module) else program

    @field_validator("data", mode="before")
    @classmethod
    def _data_source(cls, data: Any) -> Any:
        if isinstance(data, (str, Path)):
            return Path(data)
        if isinstance(data, Splits) or callable(data):
            return data
        if isinstance(data, Sequence) and all(isinstance(item, dspy.Example) for item in data):
            return list(data)
        raise ValueError("data must be a list of dspy.Example, a Splits, a .jsonl/.csv path, "
                         "or a function returning examples")

    @field_validator("input_fields")
    @classmethod
    def _no_context_input(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is not None and CONTEXT in names:
            raise ValueError(f"'{CONTEXT}' is supplied by ax (the playbook); it cannot be a data field")
        return names

    def inputs(self) -> tuple[str, ...]:
        """The task input fields (never `context`)."""
        if self.input_fields:
            return self.input_fields
        if isinstance(self.data, Path):
            return program_inputs(self.program())
        return tuple(key for key in self.examples()[0].inputs().keys() if key != CONTEXT)

    def labels(self) -> tuple[str, ...]:
        """The gold fields the metric reads."""
        if self.label_fields:
            return self.label_fields
        skip = {*self.inputs(), *META_FIELDS}
        return tuple(key for key in self.examples()[0].keys() if key not in skip)

    def examples(self) -> list[dspy.Example]:
        if self._examples is None:
            self._examples = self._materialize()
        return self._examples

    def splits(self) -> Splits:
        if self._splits is None:
            examples = self.examples()
            if self._given_sizes is not None:  # a partition given as Splits (users', built-ins') is kept as given
                cut, end = self._given_sizes["train"], self._given_sizes["train"] + self._given_sizes["dev"]
                self._splits = Splits(train=examples[:cut], dev=examples[cut:end], test=examples[end:])
            else:
                labels = self.labels()
                self._splits = split_examples(examples, stratify_by=labels[0] if labels else None)
        return self._splits

    def _materialize(self) -> list[dspy.Example]:
        if isinstance(self.data, Path):
            return load_examples(self.data, input_fields=self.inputs(), label_fields=self.label_fields,
                                 id_prefix=self.name).examples
        raw = self.data() if callable(self.data) else self.data
        if isinstance(raw, Splits):
            self._given_sizes = raw.sizes()
            raw = raw.all()
        else:
            raw = list(raw)
        if not raw:
            raise AxError(f"domain {self.name!r} has no examples")
        examples = [self._complete(example, index) for index, example in enumerate(raw)]
        seen: dict[str, int] = {}
        for index, example in enumerate(examples):
            if example.id in seen:
                raise AxError(f"domain {self.name!r}: examples {seen[example.id]} and {index} share id {example.id!r}")
            seen[example.id] = index
        return examples

    def _complete(self, example: dspy.Example, index: int) -> dspy.Example:
        """Give a user's example the id, difficulty and input keys every consumer relies on."""
        inputs = self.input_fields or (tuple(example._input_keys) if example._input_keys else None)
        if inputs is None:
            inputs = program_inputs(self.program())
        missing = [name for name in inputs if name not in example]
        if missing:
            raise AxError(f"domain {self.name!r}: example {index} lacks input field(s) {missing}")
        if "id" in example and "difficulty" in example and example._input_keys == set(inputs):
            return example
        defaults = {"id": f"{self.name}-{index:06d}", "difficulty": UNRATED}
        return dspy.Example(**{**defaults, **example.toDict()}).with_inputs(*inputs)
