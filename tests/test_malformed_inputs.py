"""Malformed inputs, tried as a new user would: each one ends in a single error line that names the file
(or the value at fault), never a traceback, and leaves an already saved domain byte-for-byte as it was."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ax.errors import AxError
from conftest import crash_training_at_step

runner = CliRunner()
INTENTS = ["refund", "billing", "tech"]
SAVED = "keeper"  # imported before the malformed inputs; must come out of every case untouched


@pytest.fixture(scope="module")
def app():
    """The real `ax` app with every sub-app mounted, as the `ax` script builds it."""
    from ax.cli import _mount, app

    if not any(group.name == "data" for group in app.registered_groups):
        _mount()
    return app


def rows(n: int = 30) -> list[dict]:
    return [{"text": f"message number {i} about {INTENTS[i % 3]}", "intent": INTENTS[i % 3], "ref": f"T{i}"}
            for i in range(n)]


def jsonl(items: list, newline: str = "\n") -> bytes:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + newline for item in items).encode()


def csv(lines: list[str], newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


GOOD_CSV = ["text,intent,ref", *(f"{row['text']},{row['intent']},{row['ref']}" for row in rows())]


@dataclass
class Case:
    """One malformed input: FILE's name and bytes (None: no file written), the import's extra options,
    what the error must say, and what it must name besides (default: FILE's path)."""

    id: str
    name: str
    content: bytes | None
    expected: str
    options: list[str] = field(default_factory=list)
    names: str | None = None
    domain: str = "newdomain"


def _cases() -> list[Case]:
    good = rows()
    mixed_newlines = jsonl(good[:2], "\r\n") + jsonl(good[2:3]) + jsonl([{"text": "x", "intent": " "}], "\r")
    return [
        # encodings
        Case("latin1-jsonl", "t.jsonl", jsonl(good[:2]) + '{"text": "café", "intent": "refund"}\n'.encode("latin-1"),
             ":3: byte 0xe9 at byte offset"),
        Case("latin1-csv", "t.csv", csv(GOOD_CSV[:3]) + "caf\xe9 au lait,refund,T9\n".encode("latin-1"),
             "is not valid utf-8"),
        Case("utf16-without-encoding", "t.csv", "\n".join(GOOD_CSV).encode("utf-16"),
             "name it with --encoding (Python: encoding=), e.g. utf-16"),
        Case("binary-junk", "t.csv", bytes(range(256)) * 4, "is not valid utf-8"),
        Case("unknown-encoding", "t.jsonl", jsonl(good), "unknown encoding 'klingon'", ["--encoding", "klingon"]),
        Case("bom-mid-file", "t.jsonl", jsonl(good[:3]) + "\ufeff".encode() + jsonl(good[3:]), ":4: not valid JSON"),
        # empty and structural
        Case("empty-jsonl", "t.jsonl", b"", "no rows to load"),
        Case("blank-lines-jsonl", "t.jsonl", b"\n  \n\t\n", "no rows to load"),
        Case("empty-csv", "t.csv", b"", "header has no column(s)"),
        Case("header-only-csv", "t.csv", csv(["text,intent"]), "no rows to load"),
        Case("missing-column-csv", "t.csv", csv(["text,label", "hi,refund"]), "header has no column(s) ['intent']"),
        Case("duplicate-header-csv", "t.csv", csv(["text,intent,intent", "hi,refund,tech"]), "repeats column(s)"),
        Case("unclosed-quote-csv", "t.csv", csv([*GOOD_CSV[:4], '"broken,refund,T9', *GOOD_CSV[4:] * 200]),
             ":5: not valid CSV"),
        Case("megabyte-csv-cell", "t.csv", csv([*GOOD_CSV[:2], "x" * 1_000_000 + ",refund,T9"]), ":3: not valid CSV"),
        Case("too-many-values-csv", "t.csv", csv([*GOOD_CSV[:3], "a,refund,T1,extra"]), ":4: more values"),
        Case("missing-field-jsonl", "t.jsonl", jsonl([*good[:2], {"text": "hi"}]), ":3: field 'intent' missing"),
        Case("duplicate-ids", "t.jsonl", jsonl([*good[:4], {**good[4], "ref": "T1"}]), "repeats id 'T1'",
             ["--id", "ref"]),
        # wrong types and junk
        Case("list-label", "t.jsonl", jsonl([*good[:2], {"text": "hi", "intent": ["a", "b"]}]), "got list"),
        Case("nested-junk", "t.jsonl", jsonl([{"text": {"a": {"b": [1, None]}}, "intent": "refund"}]),
             ":1: field 'text' missing"),  # nested keys are named with dots (text.a.b), so 'text' is absent
        Case("null-input", "t.jsonl", jsonl([{"text": None, "intent": "refund"}]), "got nothing (null)"),
        Case("array-line", "t.jsonl", jsonl([*good[:2], "[1, 2, 3]"]), ":3: expected a JSON object per line"),
        Case("truncated-json", "t.jsonl", jsonl([*good[:5], '{"text": "cut off'])[:-1], ":6: not valid JSON"),
        Case("raw-nul-in-json", "t.jsonl", jsonl([*good[:2], '{"text": "a\x00b", "intent": "refund"}']),
             ":3: not valid JSON"),
        Case("escaped-nul-in-json", "t.jsonl", jsonl([{"text": "a\u0000b", "intent": "refund"}]), "NUL character"),
        Case("nul-in-csv", "t.csv", csv([*GOOD_CSV[:2], "a\x00b,refund,T1"]), ":3: field 'text' contains a NUL"),
        # newlines: the error still points at the right line
        Case("crlf-and-mixed-newlines", "t.jsonl", mixed_newlines, ":4: field 'intent' is empty"),
        Case("crlf-csv", "t.csv", csv([*GOOD_CSV[:4], "hello,,T9"], "\r\n"), ":5: field 'intent' is empty"),
        Case("extremely-long-line", "t.jsonl", jsonl([*good[:2], "{" + "x" * 2_000_000]), ":3: not valid JSON"),
        # empty values
        Case("empty-label-csv", "t.csv", csv([*GOOD_CSV[:3], "hello,,T9"]), ":4: field 'intent' is empty"),
        Case("whitespace-input", "t.jsonl", jsonl([*good[:2], {"text": " \t ", "intent": "refund"}]),
             ":3: field 'text' is empty"),
        # labels and size
        Case("one-label", "t.jsonl", jsonl([{**row, "intent": "refund"} for row in good]), "at least two distinct"),
        Case("test-size-over-rows", "t.jsonl", jsonl(good), "--test-size 500: give a share", ["--test-size", "500"]),
        Case("sample-over-rows", "t.jsonl", jsonl(good), "--sample 5000 must be between 1", ["--sample", "5000"]),
        Case("too-few-rows", "t.jsonl", jsonl(good[:3]), "too few"),
        # files and options
        Case("txt-suffix", "t.txt", jsonl(good), "save it as .jsonl"),
        Case("json-array-file", "t.json", json.dumps(good).encode(), "save it as .jsonl"),
        Case("no-such-file", "missing.jsonl", None, "no such file"),
        Case("directory-as-file", "adir.jsonl", None, "is a directory"),
        Case("unknown-task", "t.jsonl", jsonl(good), "task must be", ["--task", "ranking"], names="'ranking'"),
        Case("bad-domain-name", "t.jsonl", jsonl(good), "must be lowercase", domain="Bad Name!", names="'Bad Name!'"),
        Case("builtin-domain-name", "t.jsonl", jsonl(good), "built-in domain", domain="legal", names="'legal'"),
        Case("same-input-and-label", "t.jsonl", jsonl(good), "one role only", ["--label", "text"], names="'text'"),
        Case("existing-domain", "t.jsonl", jsonl(good), "already holds domain", domain=SAVED, names=SAVED),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, app):
    """A domain imported the ordinary way before any malformed input is tried."""
    root = tmp_path_factory.mktemp("domains")
    source = tmp_path_factory.mktemp("source") / "good.csv"
    source.write_bytes(csv(GOOD_CSV))
    result = runner.invoke(app, ["data", "import", str(source), "--domain", SAVED, "--input", "text", "--label",
                                 "intent", "--out", str(root)])
    assert result.exit_code == 0, result.output
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_there_are_at_least_thirty_distinct_cases():
    assert len(CASES) >= 30 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_malformed_import_is_one_error_line_and_changes_nothing(case, app, saved, tmp_path):
    path = tmp_path / case.name
    if case.content is not None:
        path.write_bytes(case.content)
    elif case.id == "directory-as-file":
        path.mkdir()
    before = snapshot(saved)
    result = runner.invoke(app, ["data", "import", str(path), "--domain", case.domain, "--input", "text",
                                 "--label", "intent", "--out", str(saved), *case.options])
    line = assert_one_line_error(result, case.expected, case.names or str(path))
    assert len(line) < 1000  # the offending value is never echoed whole
    assert snapshot(saved) == before
    assert sorted(p.name for p in saved.iterdir()) == [SAVED]


def test_error_messages_never_suggest_a_format_option_the_cli_lacks(app, tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(jsonl(rows()))
    result = runner.invoke(app, ["data", "import", str(path), "--domain", "x", "--input", "text", "--label", "intent",
                                 "--out", str(tmp_path)])
    line = assert_one_line_error(result, str(path))
    assert "format=" not in line and "--format" not in line


@pytest.mark.parametrize("below", [False, True], ids=["out-is-a-file", "out-below-a-file"])
def test_out_pointing_at_a_file_names_it(app, tmp_path, below):
    source, blocker = tmp_path / "t.jsonl", tmp_path / "taken"
    source.write_bytes(jsonl(rows()))
    blocker.write_text("not a directory")
    out = blocker / "sub" if below else blocker
    result = runner.invoke(app, ["data", "import", str(source), "--domain", "x", "--input", "text", "--label",
                                 "intent", "--out", str(out)])
    assert_one_line_error(result, f"{blocker}: is a file, not a directory")
    assert blocker.read_text() == "not a directory"


def test_a_bom_is_accepted_in_jsonl_and_csv_and_encoding_reads_latin1(tmp_path):
    from ax.programs.loading import load_examples

    bom_jsonl = tmp_path / "bom.jsonl"
    bom_jsonl.write_bytes("\ufeff".encode() + jsonl(rows(3)))
    bom_csv = tmp_path / "bom.csv"
    bom_csv.write_bytes("\ufeff".encode() + csv(GOOD_CSV[:4]))
    for path in (bom_jsonl, bom_csv):
        loaded = load_examples(path, input_fields="text", label_fields="intent")
        assert [example.text for example in loaded] == [row["text"] for row in rows(3)]

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,intent\ncafé crème,refund\n".encode("latin-1"))
    with pytest.raises(AxError, match=r"latin\.csv:2: byte 0xe9 at byte offset 15 \(column 4\)"):
        load_examples(latin, input_fields="text", label_fields="intent")
    assert load_examples(latin, input_fields="text", label_fields="intent", encoding="latin-1").examples[0].text == \
        "café crème"
    wide = tmp_path / "wide.csv"
    wide.write_bytes("\n".join(GOOD_CSV[:4]).encode("utf-16"))
    assert len(load_examples(wide, input_fields="text", label_fields="intent", encoding="utf-16")) == 3


def test_crlf_files_load_every_row(tmp_path):
    from ax.programs.loading import load_examples

    path = tmp_path / "crlf.jsonl"
    path.write_bytes(jsonl(rows(4), "\r\n"))
    assert len(load_examples(path, input_fields="text", label_fields="intent")) == 4


def test_a_very_long_value_loads_with_a_warning_naming_row_and_field(app, tmp_path, tiny_model_dir):
    from ax.programs.loading import LONG_VALUE_CHARS

    long_rows = rows()
    long_rows[6]["text"] = "word " * (LONG_VALUE_CHARS // 5 + 10)
    source = tmp_path / "long.jsonl"
    source.write_bytes(jsonl(long_rows))
    result = runner.invoke(app, ["data", "import", str(source), "--domain", "long", "--input", "text", "--label",
                                 "intent", "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and f"{source}:7: field 'text' is 20,050 characters long" in warnings[0]
    assert "1 of 30 rows had field 'text' cut to 1024 tokens" in warnings[1]


def test_domains_list_shows_the_good_domains_and_warns_once_per_broken_one(app, tmp_path):
    from ax.programs.domain import BUILTIN_DOMAINS

    root = tmp_path / "domains"
    source = tmp_path / "good.csv"
    source.write_bytes(csv(GOOD_CSV))
    for name in ("fine", "broken", "garbled"):
        assert runner.invoke(app, ["data", "import", str(source), "--domain", name, "--input", "text", "--label",
                                   "intent", "--out", str(root)]).exit_code == 0
    (root / "broken" / "train.jsonl").write_bytes(b'{"id": "x", "text": "cut')
    (root / "garbled" / "domain.json").write_bytes(b"\xff\x00 not json")
    result = runner.invoke(app, ["domains", "list", "--root", str(root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name in (*BUILTIN_DOMAINS, "fine"):
        assert f" {name} " in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.output
    assert "'broken'" in warnings[0] and f"{root / 'broken' / 'train.jsonl'}:1: not valid JSON" in warnings[0]
    assert "'garbled'" in warnings[1] and str(root / "garbled" / "domain.json") in warnings[1]


# --- adapters -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from ax.inference.local import LocalBackend
    from ax.model import load_model

    backend = LocalBackend(load_model(str(tiny_model_dir)))
    yield backend
    backend.close()


@pytest.fixture
def adapter_with_manifest(tiny_model_dir, tmp_path):
    from tiny_model import make_tiny_adapter

    return make_tiny_adapter(tiny_model_dir, tmp_path / "store" / "legal")


@pytest.mark.parametrize("cut", [0, 7, 0.5], ids=["empty", "header-cut", "half"])
def test_truncated_adapter_weights_are_an_ax_error_naming_the_file(backend, adapter_with_manifest, cut):
    from ax.adapter_store import WEIGHTS_FILE, list_adapters

    weights = adapter_with_manifest / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[:int(len(data) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(AxError, match=f"{weights}.*truncated") as error:
        backend.load_adapter("legal", adapter_with_manifest)
    assert "\n" not in str(error.value)
    assert backend.adapters() == []
    (stored,) = list_adapters(adapter_with_manifest.parent)
    assert str(weights) in stored.problem


def test_merging_a_truncated_adapter_is_one_error_line(app, tiny_model_dir, adapter_with_manifest, tmp_path):
    from ax.adapter_store import WEIGHTS_FILE

    weights = adapter_with_manifest / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    result = runner.invoke(app, ["merge", str(adapter_with_manifest), "--output", str(tmp_path / "merged"),
                                 "--base-model", str(tiny_model_dir)])
    assert_one_line_error(result, str(weights), "truncated")
    assert not (tmp_path / "merged").exists()


def test_an_adapter_without_manifest_loads_only_with_an_explicit_opt_in(backend, tiny_model_dir, tmp_path):
    from ax.adapter_store import CONFIG_FILE, MANIFEST_FILE
    from tiny_model import make_tiny_adapter

    named = make_tiny_adapter(tiny_model_dir, tmp_path / "named", manifest=False)  # PEFT names the tiny model
    with pytest.raises(AxError, match=f"{named} has no {MANIFEST_FILE}.*the loaded model's name.*allow_unverified"):
        backend.load_adapter("named", named)
    elsewhere = make_tiny_adapter(tiny_model_dir, tmp_path / "elsewhere", manifest=False)
    config = json.loads((elsewhere / CONFIG_FILE).read_text())
    (elsewhere / CONFIG_FILE).write_text(json.dumps({**config, "base_model_name_or_path": "someone/other-model"}))
    with pytest.raises(AxError, match=f"{elsewhere} has no {MANIFEST_FILE}.*'someone/other-model', not the loaded"):
        backend.load_adapter("elsewhere", elsewhere)
    assert backend.adapters() == []
    backend.load_adapter("elsewhere", elsewhere, allow_unverified=True)
    assert backend._adapter_info("elsewhere")["base_check"] == "unverified"
    backend.unload_adapter("elsewhere")


def test_an_evaluation_records_the_opt_in_for_an_adapter_without_manifest(backend, tiny_model_dir, tmp_path):
    from ax.client import Client
    from ax.configuration import Configuration
    from ax.evals.matrix_store import ResponseStore
    from ax.evals.runner import evaluate_run_dir
    from ax.programs import get_domain
    from tiny_model import make_tiny_adapter

    tiny_lm = Client(backend, model_name="tiny", cache=False).lm()
    plain = make_tiny_adapter(tiny_model_dir, tmp_path / "plain", manifest=False)
    refused = Configuration(name="peft", domain="financial", lora=True, gepa=False, adapter=plain)
    with pytest.raises(AxError, match="has no ax_manifest.json"):
        evaluate_run_dir(tmp_path / "run", [refused], get_domain("financial"), lm=tiny_lm, split="test", limit=2)
    allowed = refused.model_copy(update={"unverified_adapter": True})
    evaluate_run_dir(tmp_path / "run", [allowed], get_domain("financial"), lm=tiny_lm, split="test", limit=2)
    record = ResponseStore(tmp_path / "run").read("financial", "peft")
    assert record.configuration.unverified_adapter and len(record.cells) == 2


def test_an_unreadable_adapter_config_is_an_ax_error(backend, adapter_with_manifest):
    from ax.adapter_store import CONFIG_FILE

    (adapter_with_manifest / CONFIG_FILE).write_text('{"r": 4,')
    with pytest.raises(AxError, match=f"{adapter_with_manifest / CONFIG_FILE} cannot be read"):
        backend.load_adapter("legal", adapter_with_manifest)


# --- ax train --resume -----------------------------------------------------------------------------------------------


def test_train_says_when_it_resumes_from_a_checkpoint(app, tiny_model_dir, tmp_path, monkeypatch):
    from ax.adapters.train import AdapterTrainer

    monkeypatch.chdir(tmp_path)  # `ax train --domain` finds imported domains in ./ax_domains
    source = tmp_path / "good.csv"
    source.write_bytes(csv(GOOD_CSV))
    assert runner.invoke(app, ["data", "import", str(source), "--domain", "resumable", "--input", "text", "--label",
                               "intent"]).exit_code == 0
    config = tmp_path / "lora.yaml"
    config.write_text("lora:\n  per_device_batch_size: 4\n  save_steps: 2\n  dev_fraction: 0.0\n")
    command = ["train", "--domain", "resumable", "--config", str(config), "--base-model", str(tiny_model_dir),
               "--max-steps", "4", "--output", str(tmp_path / "store" / "resumable")]

    fresh = runner.invoke(app, [*command, "--resume"])
    assert fresh.exit_code == 0, fresh.output
    assert "no checkpoint of an interrupted run was found; trained from the start" in fresh.output

    real = AdapterTrainer.compute_loss
    crash_training_at_step(monkeypatch, 4)
    assert str(runner.invoke(app, command).exception) == "power cut"
    monkeypatch.setattr(AdapterTrainer, "compute_loss", real)
    resumed = runner.invoke(app, [*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "Resumed from the checkpoint at step 2" in resumed.output
