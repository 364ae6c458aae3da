"""Generated datasets of the public sets' shapes, and importing them as users would: many labels, two inputs."""

from __future__ import annotations

import json
from collections import Counter

import dspy
import pytest
from dspy.utils.dummies import DummyLM
from typer.testing import CliRunner

from ax.errors import AxError
from ax.programs import import_domain, load_domain
from ax.programs.cli import data_app
from ax.programs.fixtures import QA_SHARES, SENTENCE_SHARES, intents, passage_qa, sentences, write_jsonl


def test_fixtures_have_the_public_sets_shapes():
    rows = sentences(600)
    assert Counter(r["label"] for r in rows) == {k: round(v * 600) for k, v in SENTENCE_SHARES.items()}
    assert 10 <= sum(len(r["text"].split()) for r in rows) / len(rows) <= 25
    qa = passage_qa(300)
    assert Counter(r["answer"] for r in qa) == {k: round(v * 300) for k, v in QA_SHARES.items()}
    words = sum(len(r["passage"].split()) for r in qa) / len(qa)
    assert 170 <= words <= 220  # ~250 tokens of a BPE tokenizer at ~1.3 tokens a word
    assert sentences(50, seed=1) == sentences(50, seed=1) != sentences(50, seed=2)
    banking = Counter(r["category"] for r in intents(3080, labels=77))
    assert len(banking) == 77 and sum(banking.values()) == 3080 and min(banking.values()) >= 15


def test_a_77_intent_set_imports_as_classification(tmp_path):
    source = write_jsonl(intents(3080, labels=77), tmp_path / "banking.jsonl")
    result = import_domain(source, "banking", "text", "category", out=tmp_path)
    assert len(result.domain.splits().train) + len(result.domain.splits().dev) + len(result.domain.splits().test) == 3080
    spec = json.loads((tmp_path / "banking" / "domain.json").read_text())
    assert spec["task"] == "classification" and len(spec["labels"]) == 77
    test_labels = Counter(e.category for e in result.domain.splits().test)
    assert len(test_labels) == 77  # stratified: every intent is in the test split


def test_the_task_defaults_by_the_labels_and_an_explicit_one_is_honoured(tmp_path):
    rows = [{"text": f"question {i}", "answer": f"answer number {i}"} for i in range(40)]
    source = write_jsonl(rows, tmp_path / "free.jsonl")
    free = import_domain(source, "free", "text", "answer", out=tmp_path)
    assert free.domain.task == "extraction" and "imported as free text" in free.warnings[0]
    forced = import_domain(source, "forced", "text", "answer", "classification", out=tmp_path)
    assert forced.domain.task == "classification" and not forced.warnings
    banking = write_jsonl(intents(1500, labels=150), tmp_path / "b150.jsonl")
    assert len(json.loads((import_domain(banking, "b150", "text", "category", out=tmp_path).directory
                           / "domain.json").read_text())["labels"]) == 150


def test_labels_differing_in_case_or_spacing_are_made_one_and_said_so(tmp_path):
    rows = [{"text": f"t{i}", "label": ["positive", "Positive ", "negative"][i % 3]} for i in range(30)]
    result = import_domain(write_jsonl(rows, tmp_path / "l.jsonl"), "l", "text", "label", out=tmp_path)
    assert json.loads((result.directory / "domain.json").read_text())["labels"] == ["negative", "positive"]
    assert result.warnings == ("labels 'positive' (10 rows), 'Positive' (10 rows) differ only in case or spacing: "
                               "all are now 'positive'",)


def test_split_sizes_and_a_stratified_sample(tmp_path):
    source = write_jsonl(intents(600, labels=4), tmp_path / "s.jsonl")  # every text distinct
    counts = import_domain(source, "counts", "text", "category", out=tmp_path, dev_size=50, test_size=100)
    assert counts.split_sizes == {"train": 450, "dev": 50, "test": 100}
    shares = import_domain(source, "shares", "text", "category", out=tmp_path, dev_size=0.1, test_size=0.3)
    assert shares.split_sizes == {"train": 360, "dev": 60, "test": 180}
    everything = Counter(row["category"] for row in intents(600, labels=4))
    test_labels = Counter(e.category for e in shares.domain.splits().test)
    assert all(abs(test_labels[label] - 0.3 * count) <= 1 for label, count in everything.items())  # stratified
    sampled = import_domain(source, "sampled", "text", "category", out=tmp_path, sample=100)
    labels = Counter(e.category for split in ("train", "dev", "test") for e in getattr(sampled.domain.splits(), split))
    assert sum(labels.values()) == 100 and all(abs(labels[k] - c / 6) < 1 for k, c in everything.items())
    again = import_domain(source, "again", "text", "category", out=tmp_path, sample=100)
    assert [e.text for e in again.domain.splits().test] == [e.text for e in sampled.domain.splits().test]
    with pytest.raises(AxError, match="--test-size 600: give a share between 0 and 1 or a whole number of rows"):
        import_domain(source, "bad", "text", "category", out=tmp_path, test_size=600)


def test_over_long_inputs_are_cut_and_counted(tmp_path, tiny_model_dir):
    from ax.model import load_tokenizer

    rows = passage_qa(40)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    budget = max(len(tokenizer.encode(row["passage"], add_special_tokens=False)) for row in rows)
    for row in rows[:7]:
        row["passage"] = " ".join([row["passage"]] * 3)  # three times as long
    source = write_jsonl(rows, tmp_path / "long.jsonl")
    result = import_domain(source, "long", ["question", "passage"], "answer", out=tmp_path, max_input_tokens=budget,
                           model=str(tiny_model_dir))
    assert result.warnings == (f"7 of 40 rows had field 'passage' cut to {budget} tokens (--max-input-tokens)",)
    splits = result.domain.splits()
    cut = [e for part in (splits.train, splits.dev, splits.test) for e in part if e.passage.endswith(" [...]")]
    assert len(cut) == 7


def test_a_nested_jsonl_key_is_named_with_dots(tmp_path):
    rows = [{"query": {"text": f"q{i}", "lang": "en"}, "label": "ab"[i % 2]} for i in range(30)]
    result = import_domain(write_jsonl(rows, tmp_path / "n.jsonl"), "nested", "query.text", "label", out=tmp_path)
    assert result.domain.inputs() == ("query_text",) and result.domain.splits().train[0].query_text.startswith("q")


def test_two_input_columns_become_two_input_fields(tmp_path):
    source = write_jsonl(passage_qa(60), tmp_path / "qa.jsonl")
    result = runner.invoke(data_app, ["import", str(source), "--domain", "qa", "--input", "question", "--input",
                                      "passage", "--label", "answer", "--out", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "question <- 'question', passage <- 'passage', answer <- 'answer'" in result.output
    domain = load_domain(tmp_path / "qa")
    assert domain.inputs() == ("question", "passage")
    signature = domain.program().predictors()[0].signature
    assert list(signature.input_fields) == ["context", "question", "passage"]
    assert signature.instructions == "Classify the question and passage into exactly one answer label."
    example = domain.splits().test[0]
    assert set(example.inputs().keys()) == {"question", "passage"}
    with dspy.context(lm=DummyLM([{"answer": example.answer}])):
        assert domain.metric(example, domain.program()(**example.inputs())).score == 1.0


def test_a_version_1_spec_with_one_input_field_still_loads(tmp_path):
    import_domain(write_jsonl(sentences(60), tmp_path / "s.jsonl"), "sent", "text", "label", out=tmp_path)
    path = tmp_path / "sent" / "domain.json"
    spec = json.loads(path.read_text())
    spec["format_version"], spec["input_field"] = 1, spec.pop("input_fields")[0]
    path.write_text(json.dumps(spec))
    assert load_domain(tmp_path / "sent").inputs() == ("text",)


def test_input_columns_that_clash_are_named(tmp_path):
    rows = [{"Question": f"q{i}", "question": f"x{i}", "label": "ab"[i % 2]} for i in range(30)]
    with pytest.raises(AxError, match="columns 'Question' and 'question' map to the same field name 'question'"):
        import_domain(write_jsonl(rows, tmp_path / "c.jsonl"), "clash", ["Question", "question"], "label",
                      out=tmp_path)


runner = CliRunner()
WIDE = {"COLUMNS": "200"}
