"""Users' data (JSONL, CSV, or a Hugging Face `datasets.Dataset`) into validated `dspy.Example`s.

A bad row stops the load with an AxError naming the file, line and field: silently
dropping rows would change what an evaluation measures without anyone noticing.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import dspy
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator

from ax.errors import AxError
from ax.programs.generation import META_FIELDS, UNRATED
from ax.programs.modules import CONTEXT

SourceFormat = Literal["jsonl", "csv"]
_SUFFIXES: dict[str, SourceFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Longer values are loaded but flagged: usually a whole document pasted into one cell, or a broken quote.
LONG_VALUE_CHARS = 20_000


class FieldMapping(BaseModel):
    """Which columns feed the program, which are gold answers, and which (if any) is the id."""

    model_config = ConfigDict(frozen=True)

    input_fields: tuple[str, ...] = Field(min_length=1)
    label_fields: tuple[str, ...] | None = None  # None: every other column
    id_field: str | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> FieldMapping:
        names = [*self.input_fields, *(self.label_fields or ()), *([self.id_field] if self.id_field else [])]
        if any(not name.strip() for name in names):
            raise ValueError("field names must not be empty")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"each column may play one role only; repeated: {repeated}")
        if CONTEXT in names:
            raise ValueError(f"'{CONTEXT}' is reserved for the playbook ax supplies; rename that column")
        if self.label_fields is not None and not self.label_fields:
            raise ValueError("label_fields must name at least one column")
        return self


@dataclass(frozen=True)
class LoadSummary:
    source: str
    format: str
    rows: int
    input_fields: tuple[str, ...]
    label_fields: tuple[str, ...]
    label_counts: dict[str, int]  # of the first label field, most common first
    warnings: tuple[str, ...] = ()  # rows loaded but worth a look, each naming its row and field

    def __str__(self) -> str:
        return (f"loaded {self.rows} rows from {self.source} ({self.format}); inputs: "
                f"{', '.join(self.input_fields)}; labels: {', '.join(self.label_fields)} "
                f"({len(self.label_counts)} distinct values)")


@dataclass(frozen=True)
class LoadedExamples:
    examples: list[dspy.Example]
    summary: LoadSummary

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[dspy.Example]:
        return iter(self.examples)


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    kind = "nothing (null)" if value is None else type(value).__name__
    raise ValueError(f"expected text or a number, got {kind}")


def _filled(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty")
    if isinstance(value, str) and "\0" in value:
        raise ValueError("contains a NUL character (a binary file, or a broken export?)")
    return value


Value = Annotated[Any, BeforeValidator(_filled), BeforeValidator(_scalar)]


def _row_model(mapping: FieldMapping, label_fields: Sequence[str]) -> type[BaseModel]:
    # Columns become positional pydantic fields with the column name as alias, so any column
    # name works ("Ticket Text", "_id") and errors can be mapped back to it.
    columns = [*mapping.input_fields, *label_fields, *([mapping.id_field] if mapping.id_field else [])]
    fields = {f"f{index}": (Value, Field(alias=column)) for index, column in enumerate(columns)}
    return create_model("Row", __config__=ConfigDict(extra="ignore"), **fields)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = item["loc"][0] if item["loc"] else "?"
        message = "missing" if item["type"] == "missing" else re.sub(r"^Value error, ", "", item["msg"])
        problems.append(f"field '{field}' {message}")
    return "; ".join(problems)


def _read_text(path: Path, encoding: str) -> str:
    """The whole file decoded; a byte the encoding cannot read is an AxError naming its line and offset.

    A UTF-8 byte-order mark is dropped, as spreadsheet exports often start with one.
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise AxError(f"{path}: unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AxError(f"{path}: cannot read the file ({error.strerror})") from None
    try:
        return data.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        likely = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "latin-1 or cp1252"
        raise AxError(f"{path}:{line}: byte 0x{data[error.start]:02x} at byte offset {error.start} (column {column}) "
                      f"is not valid {encoding}; if the file uses another encoding, name it with --encoding "
                      f"(Python: encoding=), e.g. {likely}") from None


def _jsonl_rows(path: Path, encoding: str) -> Iterator[tuple[str, dict]]:
    # Split on "\n" only: str.splitlines would also break JSON strings holding U+2028 or U+0085.
    for number, line in enumerate(_read_text(path, encoding).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise AxError(f"{where}: not valid JSON: {error.msg} (column {error.colno})") from None
        if not isinstance(row, dict):
            raise AxError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
        yield where, _flatten(row)


def _flatten(row: dict, prefix: str = "") -> dict:
    """Nested objects become dotted keys ({"meta": {"title": t}} -> {"meta.title": t}), so any value can be named."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _csv_rows(path: Path, required: Sequence[str], encoding: str) -> Iterator[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(_read_text(path, encoding), newline=""))
    start = 1  # the line the record being read begins on
    try:
        header = reader.fieldnames or []
        absent = [name for name in required if name not in header]
        if absent:
            raise AxError(f"{path}:1: header has no column(s) {absent}; columns are {header}")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise AxError(f"{path}:1: header repeats column(s) {repeated}; each column needs its own name")
        start = reader.line_num + 1
        for row in reader:
            where = f"{path}:{start}"
            if None in row:
                raise AxError(f"{where}: more values than the header has columns")
            # A short row leaves None for its missing cells: drop them so validation says "missing".
            yield where, {key: value for key, value in row.items() if value is not None}
            start = reader.line_num + 1
    except csv.Error as error:
        # In practice: a field over the csv module's size limit, most often an unclosed quote swallowing the rest.
        raise AxError(f"{path}:{start}: not valid CSV ({error}); check this row for an unclosed quote") from None


def _dataset_rows(dataset: Any) -> Iterator[tuple[str, dict]]:
    for index, row in enumerate(dataset):
        yield f"dataset row {index}", dict(row)


def _detect_format(path: Path, format: str | None) -> SourceFormat:
    if format is not None:
        if format not in ("jsonl", "csv"):
            raise AxError(f"unknown format {format!r}; use 'jsonl' or 'csv'")
        return format  # type: ignore[return-value]
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        # Worded for the CLI too, which has no format option: the suffix is what both can change.
        raise AxError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; save it as .jsonl (one "
                      "JSON object per line) or .csv with a header row") from None


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _id_prefix(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "row"


def load_examples(source: str | os.PathLike | Any, input_fields: str | Sequence[str],
                  label_fields: str | Sequence[str] | None = None, id_field: str | None = None,
                  format: SourceFormat | None = None, id_prefix: str | None = None,
                  encoding: str = "utf-8") -> LoadedExamples:
    """Read every row of `source` into an Example with `id`, `difficulty` and inputs set.

    `label_fields=None` takes every column that is not an input, the id, `difficulty` or
    `explanation` as a gold field; those two optional columns, when filled, are kept on the
    example (metric feedback quotes the explanation). Without `id_field`, ids are
    `PREFIX-000000` by row order (PREFIX: the file name). Files are read as `encoding` (a UTF-8
    byte-order mark is accepted); values longer than LONG_VALUE_CHARS load with a line in
    `summary.warnings`.
    """
    try:
        mapping = FieldMapping(input_fields=_names(input_fields), id_field=id_field,
                               label_fields=None if label_fields is None else _names(label_fields))
    except ValidationError as error:
        raise AxError(f"invalid field mapping: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise AxError(f"{path}: is a directory; pass the .jsonl or .csv file inside it")
        if not path.is_file():
            raise AxError(f"{path}: no such file")
        kind = _detect_format(path, format)
        required = [*mapping.input_fields, *(mapping.label_fields or ()), *([id_field] if id_field else [])]
        rows = _jsonl_rows(path, encoding) if kind == "jsonl" else _csv_rows(path, required, encoding)
        name, prefix = str(path), id_prefix or _id_prefix(path.stem)
    elif hasattr(source, "column_names") and hasattr(source, "__iter__"):  # datasets.Dataset, duck-typed
        kind, rows, name, prefix = "datasets", _dataset_rows(source), type(source).__name__, id_prefix or "row"
    else:
        raise AxError(f"cannot load examples from {type(source).__name__}; pass a .jsonl/.csv path or a datasets.Dataset")

    examples, seen_ids, warnings = [], {}, []
    labels, model = mapping.label_fields, None
    for where, row in rows:
        if labels is None:  # first row decides which columns are gold answers
            skip = {*mapping.input_fields, id_field, *META_FIELDS}
            labels = tuple(key for key in row if key not in skip)
            if not labels:
                raise AxError(f"{where}: no column left for gold answers besides the inputs {list(mapping.input_fields)}")
        model = model or _row_model(mapping, labels)
        try:
            model.model_validate(row)
        except ValidationError as error:
            raise AxError(f"{where}: {_describe(error)}") from None
        example_id = str(row[id_field]) if id_field else f"{prefix}-{len(examples):06d}"
        if example_id in seen_ids:
            raise AxError(f"{where}: field '{id_field}' repeats id {example_id!r} first seen at {seen_ids[example_id]}")
        seen_ids[example_id] = where
        fields = {key: row[key] for key in (*mapping.input_fields, *labels)}
        warnings += [f"{where}: field '{key}' is {len(value):,} characters long (over {LONG_VALUE_CHARS:,}); "
                     "check it is one example, not a whole document or a broken quote"
                     for key, value in fields.items() if isinstance(value, str) and len(value) > LONG_VALUE_CHARS]
        # Optional columns ax understands: a difficulty rating and the reason for the gold answer,
        # which metric feedback quotes to GEPA.
        meta = {key: row[key] for key in ("difficulty", "explanation") if isinstance(row.get(key), str) and row[key].strip()}
        example = dspy.Example(id=example_id, **{"difficulty": UNRATED, **meta}, **fields)
        examples.append(example.with_inputs(*mapping.input_fields))

    if not examples:
        raise AxError(f"{name}: no rows to load")
    counts = Counter(str(example[labels[0]]) for example in examples)
    summary = LoadSummary(source=name, format=kind, rows=len(examples), input_fields=mapping.input_fields,
                          label_fields=labels, label_counts=dict(counts.most_common()), warnings=tuple(warnings))
    return LoadedExamples(examples=examples, summary=summary)
