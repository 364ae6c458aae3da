"""A user's labelled file made into a ready Domain, saved as plain files and loadable by name.

Layout of a saved domain (default root `./ax_domains`):

    NAME/domain.json                  spec: task, input fields, label set, source, split sizes
    NAME/{train,dev,test}.jsonl       the examples, split once at import and never reshuffled

Splits are stored rather than recomputed so that an imported domain means the same items
for every later run, whatever changes in ax's splitting code.
"""

from __future__ import annotations

import json
import keyword
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ax.errors import AxError
from ax.model import atomic_write_text
from ax.programs.domain import NAME_PATTERN, Domain
from ax.programs.generation import META_FIELDS, Splits, split_examples
from ax.programs.loading import LoadSummary, load_examples
from ax.programs.metrics import label_metric, text_metric
from ax.programs.modules import CONTEXT, PredictProgram, context_field

DEFAULT_DOMAINS_DIR = Path("ax_domains")
SPEC_FILE = "domain.json"
SPLIT_NAMES = ("train", "dev", "test")
ImportTask = Literal["classification", "extraction"]
# A label column where most labels occur once is free text, better served by extraction; intent sets
# of 77-150 labels with dozens of rows each are classification.
SINGLETON_SHARE = 0.5
# Field names that would shadow dspy.Example methods (pred.values is a method) or ax's own fields.
_RESERVED = {name for name in dir(dspy.Prediction) if not name.startswith("_")} | set(META_FIELDS) | {CONTEXT}


class DomainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1, 2] = 2
    name: str = Field(pattern=NAME_PATTERN)
    task: ImportTask
    input_fields: list[str] = Field(min_length=1)  # in the order the program's signature lists them
    label_field: str
    source_columns: dict[str, str]  # field name in the program -> column name in the user's file
    labels: list[str] | None = None  # classification only
    source: str
    rows: int
    splits: dict[str, int]
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _one_input_of_version_1(cls, data: Any) -> Any:
        """Version 1 specs (one input column) name it `input_field`."""
        if isinstance(data, dict) and "input_field" in data:
            data = {**{k: v for k, v in data.items() if k != "input_field"}, "input_fields": [data["input_field"]]}
        return data


@dataclass(frozen=True)
class ImportResult:
    domain: Domain
    directory: Path
    summary: LoadSummary
    split_sizes: dict[str, int]


def field_name(column: str) -> str:
    """A signature-safe field name for a column: 'Ticket Text' -> 'ticket_text'."""
    name = re.sub(r"\W+", "_", column).strip("_").lower() or "field"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"field_{name}"
    return f"{name}_field" if name in _RESERVED else name


def _signature(spec: DomainSpec) -> type[dspy.Signature]:
    inputs = " and ".join(spec.input_fields)
    if spec.task == "classification":
        output_type, instructions = Literal[tuple(spec.labels)], (
            f"Classify the {inputs} into exactly one {spec.label_field} label.")
    else:
        output_type, instructions = str, (
            f"Extract the {spec.label_field} from the {inputs}, copied exactly as written.")
    fields = {
        CONTEXT: (str, context_field()),
        **{name: (str, dspy.InputField()) for name in spec.input_fields},
        spec.label_field: (output_type, dspy.OutputField()),
    }
    return dspy.make_signature(fields, instructions, signature_name=_camel(spec.name))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[_-]", name))


def _domain(spec: DomainSpec, splits: Splits) -> Domain:
    program = type(f"{_camel(spec.name)}Program", (PredictProgram,), {"signature": _signature(spec)})
    metric = (label_metric if spec.task == "classification" else text_metric)(spec.label_field)
    return Domain(name=spec.name, program=program, metric=metric, data=splits, task=spec.task,
                  description=spec.description, input_fields=tuple(spec.input_fields),
                  label_fields=(spec.label_field,))


def import_domain(path: str | Path | Any, name: str, input_col: str | Sequence[str], label_col: str,
                  task: ImportTask = "classification", *, out: str | Path | None = None,
                  id_col: str | None = None, format: Literal["jsonl", "csv"] | None = None,
                  overwrite: bool = False, encoding: str = "utf-8") -> ImportResult:
    """Validate `path` (JSONL, CSV or a datasets.Dataset), split it 60/20/20 deterministically,
    save it under `out/name`, and return the Domain.

    `input_col`: the column the program reads, or several (a question and its passage), each
    an input field of the program's signature in the order given. Classification takes the label set from the data and scores exact labels; extraction
    scores normalized exact match of the text. Identical input texts share a split.
    """
    from ax.programs.registry import BUILTIN_DOMAINS  # the registry imports this module

    if not re.fullmatch(NAME_PATTERN, name):
        raise AxError(f"domain name {name!r} must be lowercase letters, digits, '_' or '-', starting with a letter")
    if name in BUILTIN_DOMAINS:
        raise AxError(f"{name!r} is a built-in domain; choose another name")
    if task not in ("classification", "extraction"):
        raise AxError(f"task must be 'classification' or 'extraction', not {task!r}")
    directory = Path(out or DEFAULT_DOMAINS_DIR) / name
    _check_out_directory(directory)
    if (directory / SPEC_FILE).exists() and not overwrite:
        raise AxError(f"{directory} already holds domain {name!r}; pass overwrite=True (--force) to replace it")

    input_cols = [input_col] if isinstance(input_col, str) else list(input_col)
    if not input_cols:
        raise AxError("import needs at least one input column (--input)")
    loaded = load_examples(path, input_fields=input_cols, label_fields=[label_col], id_field=id_col,
                           format=format, id_prefix=name, encoding=encoding)
    columns = [*input_cols, label_col]
    fields = [field_name(column) for column in columns]
    clashing = [(a, b) for i, a in enumerate(columns) for b in columns[i + 1:] if field_name(a) == field_name(b)]
    if clashing:
        a, b = clashing[0]
        raise AxError(f"columns {a!r} and {b!r} map to the same field name {field_name(a)!r}")
    input_fields, label_field = fields[:-1], fields[-1]
    examples = [dspy.Example(**{key: row[key] for key in META_FIELDS if key in row},
                             **{field: str(row[column]) for field, column in zip(input_fields, input_cols)},
                             **{label_field: str(row[label_col]).strip()})
                .with_inputs(*input_fields) for row in loaded]
    splits = split_examples(examples, stratify_by=label_field if task == "classification" else None)
    if not all(splits.sizes().values()):
        raise AxError(f"{loaded.summary.source}: {len(examples)} rows are too few for train, dev and test "
                      f"splits (got {splits.sizes()}); add rows")
    labels = _label_set(examples, label_field, loaded.summary.source) if task == "classification" else None
    spec = DomainSpec(name=name, task=task, input_fields=input_fields, label_field=label_field,
                      source_columns=dict(zip(fields, columns)), labels=labels,
                      source=loaded.summary.source, rows=len(examples), splits=splits.sizes(),
                      description=f"Imported from {loaded.summary.source}: {' + '.join(input_cols)} -> {label_col} "
                                  f"({task}).")
    try:
        for split in SPLIT_NAMES:
            lines = (json.dumps(example.toDict(), ensure_ascii=False) for example in getattr(splits, split))
            atomic_write_text(directory / f"{split}.jsonl", "".join(f"{line}\n" for line in lines))
        atomic_write_text(directory / SPEC_FILE, spec.model_dump_json(indent=2) + "\n")  # written last: marks completion
    except OSError as error:
        raise AxError(f"{error.filename or directory}: cannot save domain {name!r} ({error.strerror})") from None
    return ImportResult(domain=_domain(spec, splits), directory=directory, summary=loaded.summary,
                        split_sizes=splits.sizes())


def _check_out_directory(directory: Path) -> None:
    """Refuse, before anything is read or written, a target whose nearest existing ancestor is a file."""
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    if not existing.is_dir():
        raise AxError(f"{existing}: is a file, not a directory; --out (out=) must name a directory for saved domains")


def _label_set(examples: list[dspy.Example], label_field: str, source: str) -> list[str]:
    counts = Counter(example[label_field] for example in examples)
    labels = sorted(counts)
    if len(labels) < 2:
        raise AxError(f"{source}: classification needs at least two distinct labels, found {labels}")
    singletons = sum(count == 1 for count in counts.values())
    if singletons > SINGLETON_SHARE * len(labels):
        raise AxError(f"{source}: {singletons} of the {len(labels)} distinct labels occur only once, which looks "
                      "like free text; use task='extraction' (--task extraction)")
    folded: dict[str, str] = {}
    for label in labels:
        twin = folded.setdefault(" ".join(label.split()).casefold(), label)
        if twin != label:
            raise AxError(f"{source}: labels {twin!r} and {label!r} differ only in case or spacing; make them one")
    return labels


def load_domain(directory: str | Path) -> Domain:
    """A domain saved by `import_domain`, with its stored splits."""
    directory = Path(directory)
    spec_path = directory / SPEC_FILE
    try:
        spec = DomainSpec.model_validate_json(spec_path.read_bytes())
    except FileNotFoundError:
        raise AxError(f"{directory}: no {SPEC_FILE}; import the domain first (ax data import)") from None
    except OSError as error:
        raise AxError(f"{spec_path}: cannot read the domain spec ({error.strerror})") from None
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(map(str, problem["loc"])) or "top level"
        raise AxError(f"{spec_path}: not a valid domain spec ({problem['msg']} at {where}); "
                      "import the domain again (ax data import --force)") from None
    parts = {split: load_examples(directory / f"{split}.jsonl", input_fields=spec.input_fields,
                                  label_fields=[spec.label_field], id_field="id").examples
             for split in SPLIT_NAMES}
    return _domain(spec, Splits(**parts))


def saved_domain_names(root: str | Path | None = None) -> list[str]:
    root = Path(root or DEFAULT_DOMAINS_DIR)
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if (child / SPEC_FILE).is_file())
