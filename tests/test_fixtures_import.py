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


def test_free_text_labels_are_still_refused_with_the_way_out(tmp_path):
    rows = [{"text": f"question {i}", "answer": f"answer number {i}"} for i in range(40)]
    with pytest.raises(AxError, match=r"40 of the 40 distinct labels occur only once.*--task extraction"):
        import_domain(write_jsonl(rows, tmp_path / "free.jsonl"), "free", "text", "answer", out=tmp_path)


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
