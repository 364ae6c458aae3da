"""A user's labelled file made into a ready Domain, saved as plain files and loadable by name.

Layout of a saved domain (default root `./ax_domains`):

    NAME/domain.json                  spec: task, input fields, label set, source, split sizes
    NAME/{train,dev,test}.jsonl       the examples, split once at import and never reshuffled

Splits are stored rather than recomputed so that an imported domain means the same items
for every later run, whatever changes in ax's splitting code.
"""

from __future__ import annotations

import hashlib
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
from ax.names import NAME_PATTERN, check_name
from ax.model import atomic_write_text, load_tokenizer
from ax.programs.domain import AGENT_DOMAINS, BUILTIN_DOMAINS, Domain
from ax.programs.generation import META_FIELDS, Splits, input_key, split_examples
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
# Inputs longer than this many tokens are cut at import, so a prompt with the playbook still fits
# the model's context (SmolLM2: 8,192 tokens).
DEFAULT_MAX_INPUT_TOKENS = 1024
TRUNCATION_MARK = " [...]"
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
    warnings: tuple[str, ...] = ()  # what the import changed: folded labels, cut inputs, long values


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
                  task: ImportTask | None = None, *, out: str | Path | None = None,
                  id_col: str | None = None, format: Literal["jsonl", "csv"] | None = None,
                  overwrite: bool = False, encoding: str = "utf-8", dev_size: float = 0.2,
                  test_size: float = 0.2, sample: int | None = None,
                  max_input_tokens: int | None = DEFAULT_MAX_INPUT_TOKENS, model: str | None = None) -> ImportResult:
    """Validate `path` (JSONL, CSV or a datasets.Dataset), split it deterministically (60/20/20 unless
    `dev_size`/`test_size` say otherwise: shares below 1 or row counts), save it under `out/name`,
    and return the Domain.

    `input_col`: the column the program reads, or several (a question and its passage), each an
    input field of the program's signature in the order given; a JSONL nested key is named with
    dots (`meta.title`). `task`: classification takes the label set from the data and scores exact
    labels, extraction scores normalized exact match of the text; None picks classification unless
    most labels occur once (free text). Labels differing only in case or spacing are made one, and
    said so. `sample`: keep that many rows, label shares kept. `max_input_tokens`: an input longer
    than that many tokens of `model`'s tokenizer (default: the embedded model's) is cut, and counted
    in the result's warnings. Identical input texts share a split.
    """
    check_name("domain", name)
    if name in (*BUILTIN_DOMAINS, *AGENT_DOMAINS):
        raise AxError(f"{name!r} is a built-in domain; choose another name")
    if task not in ("classification", "extraction", None):
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
    source, warnings = loaded.summary.source, list(loaded.summary.warnings)
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
    if task is None:
        task = "extraction" if _looks_like_free_text(examples, label_field) else "classification"
        if task == "extraction":
            warnings.append(f"most {label_col!r} values occur once, so it is imported as free text (extraction); "
                            "--task classification makes them labels")
    if task == "classification":
        examples, folded = _fold_labels(examples, label_field)
        warnings += folded
    if sample is not None:
        examples = _stratified_sample(examples, sample, label_field if task == "classification" else None, source)
    if max_input_tokens is not None:
        examples, cut = _truncate_inputs(examples, input_fields, max_input_tokens, model)
        warnings += cut

    shares = {split: _share(size, len(examples), split, source) for split, size in (("dev", dev_size), ("test", test_size))}
    splits = split_examples(examples, stratify_by=label_field if task == "classification" else None, **shares)
    if not all(splits.sizes().values()):
        raise AxError(f"{source}: {len(examples)} rows are too few for train, dev and test "
                      f"splits (got {splits.sizes()}); add rows")
    labels = _label_set(examples, label_field, source) if task == "classification" else None
    spec = DomainSpec(name=name, task=task, input_fields=input_fields, label_field=label_field,
                      source_columns=dict(zip(fields, columns)), labels=labels,
                      source=source, rows=len(examples), splits=splits.sizes(),
                      description=f"Imported from {source}: {' + '.join(input_cols)} -> {label_col} ({task}).")
    try:
        for split in SPLIT_NAMES:
            lines = (json.dumps(example.toDict(), ensure_ascii=False) for example in getattr(splits, split))
            atomic_write_text(directory / f"{split}.jsonl", "".join(f"{line}\n" for line in lines))
        atomic_write_text(directory / SPEC_FILE, spec.model_dump_json(indent=2) + "\n")  # written last: marks completion
    except OSError as error:
        raise AxError(f"{error.filename or directory}: cannot save domain {name!r} ({error.strerror})") from None
    return ImportResult(domain=_domain(spec, splits), directory=directory, summary=loaded.summary,
                        split_sizes=splits.sizes(), warnings=tuple(warnings))


def _share(size: float, rows: int, split: str, source: str) -> float:
    """A split's share of the rows: `size` below 1 is one already, a whole number of 1 or more counts rows."""
    if 0 < size < 1:
        return size
    if size >= 1 and float(size).is_integer() and size < rows:
        return size / rows
    raise AxError(f"{source}: --{split}-size {size:g}: give a share between 0 and 1 or a whole number of rows below {rows}")


def _looks_like_free_text(examples: list[dspy.Example], label_field: str) -> bool:
    counts = Counter(example[label_field] for example in examples)
    return sum(count == 1 for count in counts.values()) > SINGLETON_SHARE * len(counts)


def _fold_labels(examples: list[dspy.Example], label_field: str) -> tuple[list[dspy.Example], list[str]]:
    """Labels that differ only in case or spacing become their most common spelling; each merge is reported."""
    counts = Counter(example[label_field] for example in examples)
    spellings: dict[str, list[str]] = {}
    for label, _ in counts.most_common():
        spellings.setdefault(" ".join(label.split()).casefold(), []).append(label)
    canonical = {label: forms[0] for forms in spellings.values() for label in forms}
    notes = [f"labels {', '.join(f'{form!r} ({counts[form]} rows)' for form in forms)} differ only in case or "
             f"spacing: all are now {forms[0]!r}" for forms in spellings.values() if len(forms) > 1]
    if not notes:
        return examples, []
    return [example.copy(**{label_field: canonical[example[label_field]]}) for example in examples], notes


def _stratified_sample(examples: list[dspy.Example], n: int, label_field: str | None,
                       source: str) -> list[dspy.Example]:
    """`n` rows, each label's share kept (largest remainders), chosen by a hash of their inputs: the same rows
    whatever the file order, domain name or ids."""
    if not 0 < n < len(examples):
        raise AxError(f"{source}: --sample {n} must be between 1 and the {len(examples)} rows loaded")
    groups: dict[str, list[dspy.Example]] = {}
    for example in examples:
        groups.setdefault(str(example[label_field]) if label_field else "", []).append(example)
    quotas = {key: n * len(group) / len(examples) for key, group in groups.items()}
    take = {key: int(quota) for key, quota in quotas.items()}
    for key in sorted(quotas, key=lambda k: take[k] - quotas[k])[:n - sum(take.values())]:
        take[key] += 1
    kept = {id(e) for key, group in groups.items()
            for e in sorted(group, key=lambda e: hashlib.sha256(repr(input_key(e, e.inputs().keys())).encode())
                            .hexdigest())[:take[key]]}
    return [example for example in examples if id(example) in kept]


def _truncate_inputs(examples: list[dspy.Example], input_fields: list[str], budget: int,
                     model: str | None) -> tuple[list[dspy.Example], list[str]]:
    """Inputs cut to `budget` tokens (a byte-level tokenizer gives at most one token per byte, so only
    longer texts are tokenized), ending in a visible mark; one warning per field with its count."""
    tokenizer, cut, out = None, Counter(), []
    for example in examples:
        changes = {}
        for field in input_fields:
            text = example[field]
            if len(text.encode()) <= budget:
                continue
            if tokenizer is None:
                tokenizer = load_tokenizer(model)
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) > budget:
                changes[field] = tokenizer.decode(ids[:budget]) + TRUNCATION_MARK
                cut[field] += 1
        out.append(example.copy(**changes) if changes else example)
    return out, [f"{count} of {len(examples)} rows had field {field!r} cut to {budget} tokens (--max-input-tokens)"
                 for field, count in cut.items()]


def _check_out_directory(directory: Path) -> None:
    """Refuse, before anything is read or written, a target whose nearest existing ancestor is a file."""
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    if not existing.is_dir():
        raise AxError(f"{existing}: is a file, not a directory; --out (out=) must name a directory for saved domains")


def _label_set(examples: list[dspy.Example], label_field: str, source: str) -> list[str]:
    labels = sorted({example[label_field] for example in examples})
    if len(labels) < 2:
        raise AxError(f"{source}: classification needs at least two distinct labels, found {labels}")
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
