"""Context assembly: token budgets on the model's tokenizer, relevance, determinism, WithContext."""

from __future__ import annotations

import dspy
import pytest
from dspy.utils.dummies import DummyLM

from ax.context.assembler import ContextAssembler, Demo, WithContext
from ax.context.deltas import AddOp, CountOp, apply_deltas
from ax.context.playbook import Playbook
from ax.context.retrieval import BM25, Document, load_documents
from ax.context.tokens import count_whitespace_tokens, token_counter
from ax.errors import AxError

LESSONS = [
    ("strategies", "For lease questions, find which party the clause binds: tenant or landlord."),
    ("strategies", "For revenue growth, divide the change in revenue by the earlier period's revenue."),
    ("pitfalls", "Chest pain with shortness of breath is urgent; never triage it as routine."),
    ("formulas", "Gross margin equals revenue minus cost of goods sold, divided by revenue."),
    ("pitfalls", "Refund requests need the order number before any promise is made."),
    ("domain_facts", "Costs fell while revenue grew means operating leverage improved."),
]
DOCUMENTS = [
    Document(id="lease.md#0", text="The contract clause binds the tenant and the landlord to the notice period."),
    Document(id="cats.md#0", text="Cats sleep most of the day."),
    Document(id="finance.md#0", text="Revenue grew 10 percent while costs fell 5 percent in the quarter."),
]
QUERIES = ["Did revenue grow faster than costs?", "Who does the contract clause bind?",
           "patient reports chest pain", "customer wants a refund for the order", "unrelated words entirely"]


@pytest.fixture
def playbook() -> Playbook:
    playbook = Playbook(domain="mixed")
    apply_deltas(playbook, [AddOp(section=s, content=c) for s, c in LESSONS], source="seed")
    return playbook


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def demos():
    return [dspy.Example(question="What is the revenue growth if revenue rose from 100 to 110?", answer="10%")
            .with_inputs("question"),
            Demo(inputs={"question": "Is chest pain urgent?"}, outputs={"answer": "yes"})]


def test_budget_is_never_exceeded_on_the_model_tokenizer(playbook, tokenizer):
    count = token_counter(tokenizer)
    for budget in (1, 20, 60, 120, 250, 600, 5000):
        assembler = ContextAssembler(playbook, DOCUMENTS, demos(), token_budget=budget, tokenizer=tokenizer)
        for query in QUERIES:
            assembled = assembler.assemble(query)
            assert assembled.tokens == count(assembled.text) <= budget
    assert len(ContextAssembler(playbook, DOCUMENTS, demos(), token_budget=5000, tokenizer=tokenizer)
               .assemble(QUERIES[0]).items) == len(LESSONS) + 1 + 2  # finance doc matches; cats never do
    assert ContextAssembler(playbook, token_budget=1, tokenizer=tokenizer).assemble("revenue").text == ""


def test_relevance_picks_the_on_topic_bullet(playbook, tokenizer):
    count = token_counter(tokenizer)
    for query, expected in [("Who does the lease clause bind, the tenant?", "str-00001"),
                            ("How should I compute revenue growth?", "str-00002"),
                            ("chest pain and shortness of breath", "pit-00003")]:
        wanted = playbook.get(expected)
        room_for_one = count(f"# Playbook\n## {wanted.section}\n{wanted.render()}")
        assembler = ContextAssembler(playbook, token_budget=room_for_one, tokenizer=tokenizer, cite_hint=False)
        assert assembler.assemble(query).bullet_ids == [expected]


def test_ties_favour_the_better_track_record(playbook):
    apply_deltas(playbook, [CountOp(bullet_id="pit-00005", helpful=3)], source="t")
    assembled = ContextAssembler(playbook, token_budget=10_000).assemble("nothing matches here")
    assert assembled.bullet_ids[0] == "pit-00005"


def test_documents_are_retrieved_only_when_relevant_and_output_is_deterministic(playbook):
    assembler = ContextAssembler(playbook, DOCUMENTS, demos(), token_budget=10_000, max_documents=1, max_demos=1)
    assembled = assembler.assemble("Did revenue grow while costs fell?")
    documents = [i.key for i in assembled.items if i.source == "document"]
    assert documents == ["finance.md#0"]
    assert [i.key for i in assembled.items if i.source == "demo"] == ["0"]
    text = assembled.text
    assert text.index("# Playbook") < text.index("# Reference documents") < text.index("# Examples")
    assert "[finance.md#0] Revenue grew 10 percent" in text and "answer: 10%" in text
    # bullets render in playbook order grouped by section, whatever their rank
    assert text.index("[str-00001]") < text.index("[str-00002]") < text.index("[pit-00003]")
    again = ContextAssembler(playbook, DOCUMENTS, demos(), token_budget=10_000, max_documents=1, max_demos=1)
    assert again.assemble("Did revenue grow while costs fell?") == assembled
    assert not [i for i in assembler.assemble("zebra").items if i.source == "document"]


def test_index_follows_playbook_changes(playbook):
    assembler = ContextAssembler(playbook, token_budget=10_000)
    assert "zebra" not in assembler("zebra stripes")
    apply_deltas(playbook, [AddOp(section="domain_facts", content="A zebra has stripes.")], source="t")
    assert assembler.assemble("zebra stripes").items[0].key == "fct-00007"


def test_whitespace_fallback_and_custom_encoders():
    assert token_counter(None) is count_whitespace_tokens

    class CharEncoder:  # tiktoken-like: encode(text) without add_special_tokens
        def encode(self, text):
            return list(text)

    assert token_counter(CharEncoder())("abc d") == 5
    playbook = Playbook(domain="d")
    apply_deltas(playbook, [AddOp(section="strategies", content="one two three four five")], source="t")
    assembled = ContextAssembler(playbook, token_budget=30).assemble("one")
    assert assembled.tokens == count_whitespace_tokens(assembled.text) <= 30
    with pytest.raises(AxError):
        ContextAssembler(playbook, token_budget=0)
    with pytest.raises(AxError, match="with_inputs"):
        ContextAssembler(demos=[dspy.Example(question="q", answer="a")])


def test_bm25_and_document_loading(tmp_path):
    scores = BM25(["the tenant pays rent", "the landlord repairs", "rent rent rent is due"]).scores("rent")
    assert scores[1] == 0 and scores[2] > scores[0] > 0
    assert BM25([]).scores("anything") == []

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("one two three\n\nfour five\n\n" + "six " * 10)
    (tmp_path / "sub" / "b.txt").write_text("alpha beta")
    (tmp_path / "ignored.json").write_text("{}")
    documents = load_documents(tmp_path, chunk_words=6)
    assert [d.id for d in documents] == ["a.md#0", "a.md#1", "sub/b.txt#0"]
    assert documents[0].text == "one two three\n\nfour five"
    with pytest.raises(AxError):
        load_documents(tmp_path / "missing")


class QA(dspy.Signature):
    """Answer the question."""

    context: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def test_with_context_fills_the_context_field(playbook):
    lm = DummyLM([{"answer": "tenant [str-00001]"}, {"answer": "x"}])
    program = WithContext(dspy.Predict(QA), ContextAssembler(playbook, DOCUMENTS, token_budget=10_000))
    assert [name for name, _ in program.named_predictors()] == ["program"]  # GEPA sees the inner predictor
    with dspy.context(lm=lm):
        prediction, assembled = program.run(question="Who does the contract clause bind?")
        assert prediction.answer == "tenant [str-00001]"
        prompt = lm.history[-1]["messages"][-1]["content"]
        assert "[lease.md#0] The contract clause binds" in prompt and "[str-00001]" in prompt
        assert [i.key for i in assembled.items[:2]] == ["str-00001", "lease.md#0"]  # equal scores: playbook first

        program(question="q", context="given by the caller")
        assert "given by the caller" in lm.history[-1]["messages"][-1]["content"]


def test_with_context_requires_a_context_field():
    with pytest.raises(AxError, match="context"):
        WithContext(dspy.Predict("question -> answer"), ContextAssembler())


def test_program_copies_share_the_assembler(playbook):
    program = WithContext(dspy.Predict(QA), ContextAssembler(playbook))
    copy = program.deepcopy()
    assert copy.assembler is program.assembler and copy.program is not program.program
