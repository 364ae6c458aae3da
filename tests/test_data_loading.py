"""Loading users' files (errors name file, line and field), importing them as domains, and the CLI."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import dspy
import pytest
from dspy.utils.dummies import DummyLM
from typer.testing import CliRunner

from ax.errors import AxError
from ax.programs import get_domain, import_domain, list_domains, load_domain, load_examples
from ax.programs.cli import data_app, domains_app
from ax.programs.generation import input_key

INTENTS = ["refund", "billing", "tech"]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def ticket_rows(n: int = 30) -> list[dict]:
    return [{"text": f"message number {i} about {INTENTS[i % 3]}", "intent": INTENTS[i % 3], "ref": f"T{i}"} for i in range(n)]


def write_csv(path: Path, n: int = 30) -> Path:
    lines = ["Ticket Text,Intent"] + [f'"message {i}, about {INTENTS[i % 3]}",{INTENTS[i % 3]}' for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- load_examples ---------------------------------------------------------------------------------------------

def test_jsonl_loads_every_row_with_ids_inputs_and_summary(tmp_path):
    path = write_jsonl(tmp_path / "tickets.jsonl", ticket_rows(12))
    loaded = load_examples(path, input_fields="text", label_fields=["intent"])
    assert len(loaded) == loaded.summary.rows == 12
    first = loaded.examples[0]
    assert first.id == "tickets-000000" and first.difficulty == "unrated"
    assert set(first.inputs().keys()) == {"text"} and first.intent == "refund"
    assert loaded.summary.label_counts == {"refund": 4, "billing": 4, "tech": 4}
    assert "loaded 12 rows" in str(loaded.summary)


def test_id_field_and_default_labels(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", ticket_rows(5))
    loaded = load_examples(path, input_fields=["text"], id_field="ref")
    assert [e.id for e in loaded] == ["T0", "T1", "T2", "T3", "T4"]
    assert loaded.summary.label_fields == ("intent",)


def test_optional_difficulty_and_explanation_columns_are_kept(tmp_path):
    rows = [{"text": "t0", "intent": "tech", "difficulty": "hard", "explanation": "mentions a crash"},
            {"text": "t1", "intent": "billing", "difficulty": "", "explanation": ""}]
    loaded = load_examples(write_jsonl(tmp_path / "t.jsonl", rows), input_fields="text")
    assert loaded.summary.label_fields == ("intent",)
    first, second = loaded.examples
    assert (first.difficulty, first.explanation) == ("hard", "mentions a crash")
    assert second.difficulty == "unrated" and "explanation" not in second


def test_blank_lines_are_not_rows_but_nothing_else_is_dropped(tmp_path):
    rows = ticket_rows(6)
    path = write_jsonl(tmp_path / "t.jsonl", [rows[0], "", rows[1], "   ", *rows[2:]])
    assert load_examples(path, input_fields="text", label_fields="intent").summary.rows == 6


@pytest.mark.parametrize("bad_line, expected", [
    ('{"text": "hi", "intent": ', "not valid JSON"),
    ('{"text": "hi"}', "field 'intent' missing"),
    ('{"text": "hi", "intent": "  "}', "field 'intent' is empty"),
    ('{"text": ["a", "list"], "intent": "tech"}', "field 'text' expected text or a number, got list"),
    ('{"text": "hi", "intent": null}', "field 'intent' expected text or a number, got nothing (null)"),
    ('["not", "an", "object"]', "expected a JSON object"),
])
def test_a_bad_jsonl_row_names_file_line_and_field(tmp_path, bad_line, expected):
    rows = ticket_rows(4)
    path = write_jsonl(tmp_path / "bad.jsonl", [rows[0], rows[1], bad_line, rows[2]])
    with pytest.raises(AxError) as error:
        load_examples(path, input_fields="text", label_fields="intent")
    assert f"{path}:3" in str(error.value) and expected in str(error.value)


def test_duplicate_ids_name_both_lines(tmp_path):
    rows = ticket_rows(3)
    rows[2]["ref"] = "T0"
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    with pytest.raises(AxError, match=r"dup.jsonl:3: field 'ref' repeats id 'T0' first seen at .*dup.jsonl:1"):
        load_examples(path, input_fields="text", label_fields="intent", id_field="ref")


def test_csv_loads_quoted_fields_and_reports_lines(tmp_path):
    path = write_csv(tmp_path / "tickets.csv", 9)
    loaded = load_examples(path, input_fields="Ticket Text", label_fields="Intent")
    assert loaded.summary.rows == 9 and loaded.summary.format == "csv"
    assert loaded.examples[0]["Ticket Text"] == "message 0, about refund"

    bad = tmp_path / "bad.csv"
    bad.write_text('text,intent\n"a message\nspanning two lines",tech\nsecond,\nthird,billing\n')
    with pytest.raises(AxError) as error:
        load_examples(bad, input_fields="text", label_fields="intent")
    assert f"{bad}:4" in str(error.value) and "field 'intent' is empty" in str(error.value)


@pytest.mark.parametrize("content, expected", [
    ("text,label\nhello,tech\n", ":1: header has no column(s) ['intent']"),
    ("text,intent\nhello\n", ":2: field 'intent' missing"),
    ("text,intent\nhello,tech,extra\n", ":2: more values than the header"),
])
def test_csv_structure_errors(tmp_path, content, expected):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(AxError) as error:
        load_examples(path, input_fields="text", label_fields="intent")
    assert expected in str(error.value) and str(path) in str(error.value)


def test_format_detection_and_override(tmp_path):
    path = write_jsonl(tmp_path / "rows.txt", ticket_rows(3))
    with pytest.raises(AxError, match="cannot tell the format"):
        load_examples(path, input_fields="text", label_fields="intent")
    assert len(load_examples(path, input_fields="text", label_fields="intent", format="jsonl")) == 3
    with pytest.raises(AxError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl", input_fields="text")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(AxError, match="no rows"):
        load_examples(empty, input_fields="text", label_fields="intent")


@pytest.mark.parametrize("mapping, expected", [
    ({"input_fields": "text", "label_fields": "text"}, "one role only"),
    ({"input_fields": "context", "label_fields": "intent"}, "reserved"),
    ({"input_fields": [], "label_fields": "intent"}, "invalid field mapping"),
])
def test_field_mapping_is_validated(tmp_path, mapping, expected):
    path = write_jsonl(tmp_path / "t.jsonl", ticket_rows(3))
    with pytest.raises(AxError, match=expected):
        load_examples(path, **mapping)


class FakeDataset:
    """Duck-types the part of datasets.Dataset the loader uses (no dependency on `datasets`)."""

    def __init__(self, rows):
        self.rows, self.column_names = rows, list(rows[0])

    def __iter__(self):
        return iter(self.rows)


def test_a_datasets_object_loads_and_bad_rows_are_numbered():
    loaded = load_examples(FakeDataset(ticket_rows(4)), input_fields="text", label_fields="intent")
    assert loaded.summary.rows == 4 and loaded.summary.format == "datasets"
    rows = ticket_rows(3)
    rows[1]["intent"] = ""
    with pytest.raises(AxError, match="dataset row 1: field 'intent' is empty"):
        load_examples(FakeDataset(rows), input_fields="text", label_fields="intent")


# --- import_domain ---------------------------------------------------------------------------------------------

def test_import_classification_saves_a_domain_that_loads_by_name(tmp_path):
    source = write_csv(tmp_path / "tickets.csv", 40)
    result = import_domain(source, "tickets", "Ticket Text", "Intent", out=tmp_path / "domains")
    directory = tmp_path / "domains" / "tickets"
    assert result.directory == directory
    assert sorted(p.name for p in directory.iterdir()) == ["dev.jsonl", "domain.json", "test.jsonl", "train.jsonl"]
    spec = json.loads((directory / "domain.json").read_text())
    assert spec["labels"] == sorted(INTENTS) and spec["input_fields"] == ["ticket_text"] and spec["rows"] == 40
    assert result.summary.rows == 40 and sum(result.split_sizes.values()) == 40

    domain = result.domain
    assert domain.inputs() == ("ticket_text",) and domain.labels() == ("intent",) and domain.task == "classification"
    output = domain.program().predictors()[0].signature.output_fields["intent"]
    assert typing.get_args(output.annotation) == tuple(sorted(INTENTS))

    again = get_domain("tickets", root=tmp_path / "domains")
    assert "tickets" in list_domains(root=tmp_path / "domains")
    for split in ("train", "dev", "test"):
        assert [e.id for e in getattr(again.splits(), split)] == [e.id for e in getattr(domain.splits(), split)]
    keys = {split: {input_key(e, ["ticket_text"]) for e in getattr(again.splits(), split)} for split in ("train", "dev", "test")}
    assert not (keys["train"] & keys["dev"] or keys["train"] & keys["test"] or keys["dev"] & keys["test"])

    example = again.splits().test[0]
    with dspy.context(lm=DummyLM([{"intent": example.intent}])):
        prediction = again.program()(**example.inputs())
    assert again.metric(example, prediction).score == 1.0


def test_import_keeps_explanations_for_metric_feedback(tmp_path):
    rows = [{**row, "explanation": f"cue {i}"} for i, row in enumerate(ticket_rows(30))]
    source = write_jsonl(tmp_path / "t.jsonl", rows)
    import_domain(source, "tickets", "text", "intent", out=tmp_path)
    example = load_domain(tmp_path / "tickets").splits().dev[0]
    wrong = "tech" if example.intent != "tech" else "billing"
    assert example.explanation in load_domain(tmp_path / "tickets").metric(example, {"intent": wrong}).feedback


def test_import_is_deterministic(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", ticket_rows(30))
    for out in ("a", "b"):
        import_domain(source, "tickets", "text", "intent", out=tmp_path / out)
    for name in ("domain.json", "train.jsonl", "dev.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / "tickets" / name).read_text() == (tmp_path / "b" / "tickets" / name).read_text()


def test_identical_inputs_share_a_split(tmp_path):
    rows = ticket_rows(30) + [{"text": "message number 4 about billing", "intent": "billing", "ref": "dup"}]
    domain = import_domain(write_jsonl(tmp_path / "t.jsonl", rows), "tickets", "text", "intent", out=tmp_path).domain
    homes = [name for name in ("train", "dev", "test")
             if any(e.text == "message number 4 about billing" for e in getattr(domain.splits(), name))]
    assert len(homes) == 1


def test_import_extraction_uses_a_text_output_and_normalized_match(tmp_path):
    rows = [{"entry": f"Course {i}. Prerequisite: MATH {100 + i}.", "prereq": f"MATH {100 + i}"} for i in range(20)]
    domain = import_domain(write_jsonl(tmp_path / "c.jsonl", rows), "courses", "entry", "prereq", task="extraction",
                           out=tmp_path).domain
    assert domain.program().predictors()[0].signature.output_fields["prereq"].annotation is str
    example = domain.examples()[0]
    assert domain.metric(example, {"prereq": example.prereq.lower().replace(" ", "")}).score == 1.0


@pytest.mark.parametrize("kwargs, expected", [
    ({"name": "financial"}, "built-in"),
    ({"name": "Bad Name"}, "must be lowercase"),
    ({"task": "regression"}, "task must be"),
    ({"label_col": "missing"}, "field 'missing' missing"),
])
def test_import_errors(tmp_path, kwargs, expected):
    source = write_jsonl(tmp_path / "t.jsonl", ticket_rows(30))
    arguments = {"path": source, "name": "tickets", "input_col": "text", "label_col": "intent", "out": tmp_path, **kwargs}
    with pytest.raises(AxError, match=expected):
        import_domain(**arguments)


def test_import_refuses_to_overwrite_one_label_and_tiny_files(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", ticket_rows(30))
    import_domain(source, "tickets", "text", "intent", out=tmp_path)
    with pytest.raises(AxError, match="already holds"):
        import_domain(source, "tickets", "text", "intent", out=tmp_path)
    import_domain(source, "tickets", "text", "intent", out=tmp_path, overwrite=True)
    single = write_jsonl(tmp_path / "one.jsonl", [{"text": f"t{i}", "intent": "tech"} for i in range(10)])
    with pytest.raises(AxError, match="at least two distinct labels"):
        import_domain(single, "single", "text", "intent", out=tmp_path)
    tiny = write_jsonl(tmp_path / "tiny.jsonl", ticket_rows(3))
    with pytest.raises(AxError, match="too few"):
        import_domain(tiny, "tiny", "text", "intent", out=tmp_path)


def test_a_corrupt_saved_spec_is_an_ax_error(tmp_path):
    source = write_jsonl(tmp_path / "t.jsonl", ticket_rows(30))
    directory = import_domain(source, "tickets", "text", "intent", out=tmp_path).directory
    (directory / "domain.json").write_text('{"name": "tickets"}')
    with pytest.raises(AxError, match="not a valid domain spec"):
        load_domain(directory)


# --- CLI -------------------------------------------------------------------------------------------------------

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_cli_import_prints_the_summary_and_list_shows_the_domain(tmp_path):
    source = write_csv(tmp_path / "tickets.csv", 40)
    out = tmp_path / "domains"
    result = runner.invoke(data_app, ["import", str(source), "--domain", "tickets", "--input", "Ticket Text",
                                      "--label", "Intent", "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "rows loaded" in result.output and "40" in result.output and "train 24" in result.output
    assert (out / "tickets" / "domain.json").is_file()

    listing = runner.invoke(domains_app, ["list", "--root", str(out)], env=WIDE)
    assert listing.exit_code == 0, listing.output
    for name in ("financial", "customer_service", "specialized", "tickets"):
        assert name in listing.output
    assert "360" in listing.output and "216" in listing.output


def test_cli_import_reports_the_bad_line_and_exits_1(tmp_path):
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [*ticket_rows(2), '{"text": "x", "intent": ""}'])
    result = runner.invoke(data_app, ["import", str(bad), "--domain", "tickets", "--input", "text", "--label", "intent",
                                      "--out", str(tmp_path)], env=WIDE)
    assert result.exit_code == 1
    assert "bad.jsonl:3" in result.output and "field 'intent' is empty" in result.output
