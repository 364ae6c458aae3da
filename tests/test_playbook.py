"""Playbook persistence, ids, delta merging, parsing, refinement, the LM roles and the CLI."""

from __future__ import annotations

import json

import dspy
import pytest
from dspy.utils.dummies import DummyLM
from typer.testing import CliRunner

import ax.model
from ax.context.cli import playbook_app
from ax.context.deltas import AddOp, CountOp, MergeOp, RemoveOp, UpdateOp, apply_deltas, parse_operations
from ax.context.playbook import Playbook
from ax.context.refine import RefinePolicy, Refiner, lexical_similarity
from ax.context.roles import Curator, Reflector, cited_bullet_ids, parse_bullet_tags
from ax.context.store import PlaybookStore
from ax.errors import AxError


def make_playbook(*items: tuple[str, str], domain: str = "finance") -> Playbook:
    playbook = Playbook(domain=domain)
    apply_deltas(playbook, [AddOp(section=s, content=c) for s, c in items], source="seed")
    return playbook


# --- persistence -------------------------------------------------------------------------


def test_round_trip_preserves_everything(tmp_path):
    store = PlaybookStore(tmp_path)
    playbook = make_playbook(("strategies", "Convert percentages to decimals"), ("pitfalls", "Revenue is not profit"))
    apply_deltas(playbook, [CountOp(bullet_id="str-00001", helpful=2)], source="task 7")
    path = store.save(playbook)

    assert path == tmp_path / "finance" / "playbook.json"
    loaded = store.load("finance")
    assert loaded == playbook
    assert loaded.version == 2 and [h.source for h in loaded.history] == ["seed", "task 7"]
    assert loaded.render() == (
        "## strategies\n[str-00001] helpful=2 harmful=0 :: Convert percentages to decimals\n\n"
        "## pitfalls\n[pit-00002] helpful=0 harmful=0 :: Revenue is not profit"
    )


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    store = PlaybookStore(tmp_path)
    store.save(make_playbook(("strategies", "old lesson")))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ax.model.os, "replace", crash)
    with pytest.raises(OSError):
        store.save(make_playbook(("strategies", "new lesson")))
    monkeypatch.undo()

    assert store.load("finance").bullets[0].content == "old lesson"
    assert [p.name for p in (tmp_path / "finance").iterdir()] == ["playbook.json"]  # no temp file left


def test_corrupt_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "finance" / "playbook.json"
    path.parent.mkdir()
    path.write_text('{"domain": "finance", "bullets": [{"id": ')
    with pytest.raises(AxError, match=str(path)):
        PlaybookStore(tmp_path).load("finance")
    path.write_text(json.dumps({"domain": "finance", "bullets": "nope"}))
    with pytest.raises(AxError, match="not a valid Playbook"):
        PlaybookStore(tmp_path).load("finance")


def test_missing_playbook_and_bad_domain_names(tmp_path):
    store = PlaybookStore(tmp_path)
    assert store.load("legal").bullets == []
    with pytest.raises(AxError, match="no playbook"):
        store.load("legal", create=False)
    with pytest.raises(AxError, match="domain name"):
        store.load("../etc")


# --- ids and deltas ----------------------------------------------------------------------


def test_ids_are_stable_and_never_reused(tmp_path):
    playbook = make_playbook(("strategies", "a"), ("formulas", "b"), ("strategies", "c"), ("risk_notes", "d"))
    assert [b.id for b in playbook.bullets] == ["str-00001", "frm-00002", "str-00003", "ris-00004"]
    assert cited_bullet_ids(" ".join(b.render() for b in make_playbook(("x", "e"), ("9 q", "f")).bullets)) == [
        "sec-00001", "sec-00002"]  # short section names still give citable ids

    apply_deltas(playbook, [RemoveOp(bullet_id="frm-00002"), UpdateOp(bullet_id="str-00003", content="c2"),
                            AddOp(section="formulas", content="e")], source="t")
    assert [b.id for b in playbook.bullets] == ["str-00001", "str-00003", "ris-00004", "frm-00005"]
    assert playbook.get("str-00003").content == "c2"

    store = PlaybookStore(tmp_path)
    store.save(playbook)
    reloaded = store.load("finance")
    apply_deltas(reloaded, [AddOp(section="strategies", content="f")], source="t2")
    assert reloaded.bullets[-1].id == "str-00006"


def test_delta_semantics_and_history():
    playbook = make_playbook(("strategies", "keep units consistent"), ("pitfalls", "double counting"))
    report = apply_deltas(playbook, [
        AddOp(section="Domain Facts", content="  Gross margin = (revenue - COGS)\n / revenue "),
        UpdateOp(bullet_id="str-00001", content="keep units consistent across periods"),
        UpdateOp(bullet_id="str-09999", content="ghost"),
        RemoveOp(bullet_id="pit-00002"),
        RemoveOp(bullet_id="pit-00002"),
        CountOp(bullet_id="str-00001", helpful=2, harmful=1),
        CountOp(bullet_id="str-00001"),
    ], source="task 3")

    assert report.applied == 4 and report.version == 2
    assert [s.split(":")[1].strip() for s in report.skipped] == ["unknown bullet id", "unknown bullet id", "no counts"]
    fact = playbook.get("fct-00003")
    assert fact.section == "domain_facts" and fact.content == "Gross margin = (revenue - COGS) / revenue"
    assert fact.provenance == ["task 3"] and fact.created_version == 2
    strategy = playbook.get("str-00001")
    assert (strategy.helpful, strategy.harmful, strategy.updated_version) == (2, 1, 2)
    assert strategy.provenance == ["seed", "task 3"]
    assert playbook.get("pit-00002") is None
    assert playbook.history[-1].skipped == 3 and len(playbook.history[-1].operations) == 4

    nothing = apply_deltas(playbook, [UpdateOp(bullet_id="str-00001", content="keep units consistent across periods")],
                           source="noop")
    assert nothing.applied == 0 and playbook.version == 2 and len(playbook.history) == 2


def test_merge_op_adds_counters_and_removes_the_duplicate():
    playbook = make_playbook(("strategies", "a"), ("strategies", "a again"))
    apply_deltas(playbook, [CountOp(bullet_id="str-00001", helpful=1), CountOp(bullet_id="str-00002", helpful=2, harmful=1)],
                 source="t")
    apply_deltas(playbook, [MergeOp(bullet_id="str-00001", merged_id="str-00002")], source="refine")
    [bullet] = playbook.bullets
    assert (bullet.id, bullet.helpful, bullet.harmful) == ("str-00001", 3, 1)
    assert "merged str-00002" in bullet.provenance


def test_parse_operations_skips_and_counts_malformed_lines():
    text = """Here are the operations:
    1. ADD | Strategies | Check the sign of growth rates
    - UPDATE | [str-00001] | Convert percentages to decimals first
    * REMOVE | pit-00002
    HELPFUL | str-00001
    HARMFUL | `frm-00003`
    ADD | made_up_section | something
    ADD | pitfalls |
    UPDATE | str-00001
    REMOVE
    DELETE | str-00001

    NONE
    """
    parsed = parse_operations(text, sections={"strategies", "pitfalls"})
    assert parsed.operations == [
        AddOp(section="strategies", content="Check the sign of growth rates"),
        UpdateOp(bullet_id="str-00001", content="Convert percentages to decimals first"),
        RemoveOp(bullet_id="pit-00002"),
        CountOp(bullet_id="str-00001", helpful=1),
        CountOp(bullet_id="frm-00003", harmful=1),
    ]
    assert len(parsed.malformed) == 6
    assert parsed.malformed[0] == "Here are the operations:"
    assert parse_operations("").operations == [] and parse_operations("no changes.").malformed == []


# --- generator citations and reflector tags -----------------------------------------------


def test_playbook_from_written_lessons():
    text = "# hand-written seed\nADD | strategies | Read the units first\n\n- ADD | Common Pitfalls | Revenue is not profit\n"
    playbook = Playbook.from_text("finance", text, source="hand-written")

    assert [(b.id, b.section, b.content) for b in playbook.bullets] == [
        ("str-00001", "strategies", "Read the units first"), ("com-00002", "common_pitfalls", "Revenue is not profit")]
    assert playbook.version == 1 and [h.source for h in playbook.history] == ["hand-written"]
    with pytest.raises(AxError, match=r"'typo line'.*'REMOVE str-00001'"):
        Playbook.from_text("finance", "ADD | strategies | ok\ntypo line\nREMOVE | str-00001", source="seed")


def test_cited_bullet_ids_from_text_and_predictions():
    prediction = dspy.Prediction(reasoning="Per [str-00002] and pit-00010, then [str-00002] again", answer="4 (fct-00003)")
    assert cited_bullet_ids(prediction) == ["str-00002", "pit-00010", "fct-00003"]
    assert cited_bullet_ids(prediction, known={"fct-00003", "str-00002"}) == ["str-00002", "fct-00003"]
    assert cited_bullet_ids("no ids, only ab-12 and str-1") == []


def test_parse_bullet_tags():
    tags, malformed = parse_bullet_tags(
        "str-00001: helpful\n[pit-00002] -> Harmful.\nfrm-00003 neutral\nstr-00009: helpful\nstr-00001 maybe\n\nnone",
        shown={"str-00001", "pit-00002", "frm-00003"},
    )
    assert tags == {"str-00001": "helpful", "pit-00002": "harmful", "frm-00003": "neutral"}
    assert malformed == ["str-00009: helpful", "str-00001 maybe"]


# --- refinement ----------------------------------------------------------------------------


def test_dedupe_merges_near_duplicates_within_a_section():
    playbook = make_playbook(
        ("strategies", "Always convert percentages to decimals before multiplying."),
        ("strategies", "Convert percentages to decimals before multiplying"),
        ("strategies", "Read the fiscal year end from the filing header"),
        ("pitfalls", "Convert percentages to decimals before multiplying"),
    )
    apply_deltas(playbook, [CountOp(bullet_id="str-00002", helpful=3)], source="t")
    assert lexical_similarity(playbook.bullets[0].content, playbook.bullets[1].content) >= 0.8

    report = Refiner(RefinePolicy(max_bullets=None))(playbook)
    assert report.applied == 1
    assert [b.id for b in playbook.bullets] == ["str-00001", "str-00003", "pit-00004"]
    assert playbook.get("str-00001").helpful == 3
    assert playbook.history[-1].source == "refine"


def test_dedupe_with_a_user_embedding_function():
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return [[1.0, 0.0] if "margin" in t else [0.0, 1.0] for t in texts]

    playbook = make_playbook(("formulas", "gross margin"), ("formulas", "margin of safety"), ("formulas", "EPS"))
    refiner = Refiner(RefinePolicy(similarity_threshold=0.95, max_bullets=None), embed=embed)
    refiner(playbook)
    assert [b.content for b in playbook.bullets] == ["gross margin", "EPS"]
    refiner(playbook)
    assert calls == [["gross margin", "margin of safety", "EPS"]]  # cached, one batch


def test_prune_needs_evidence_and_margin():
    playbook = make_playbook(("strategies", "a b"), ("strategies", "c d"), ("strategies", "e f"), ("strategies", "g h"))
    apply_deltas(playbook, [
        CountOp(bullet_id="str-00001", helpful=1, harmful=3),  # pruned: evidence 4, margin 2
        CountOp(bullet_id="str-00002", harmful=2),  # kept: not enough evidence yet
        CountOp(bullet_id="str-00003", helpful=2, harmful=2),  # kept: no margin
    ], source="t")
    Refiner(RefinePolicy(min_evidence=3, harm_margin=1, max_bullets=None))(playbook)
    assert [b.id for b in playbook.bullets] == ["str-00002", "str-00003", "str-00004"]


def test_size_caps_drop_least_useful_first(tiny_model_dir):
    from transformers import AutoTokenizer

    playbook = make_playbook(*[("strategies", f"lesson number {i} about revenue") for i in range(6)])
    apply_deltas(playbook, [CountOp(bullet_id="str-00001", helpful=2), CountOp(bullet_id="str-00004", helpful=1),
                            CountOp(bullet_id="str-00006", helpful=1, harmful=1)], source="t")
    policy = RefinePolicy(similarity_threshold=1.0, max_bullets=4)
    Refiner(policy)(playbook)
    assert {b.id for b in playbook.bullets} == {"str-00001", "str-00004", "str-00005", "str-00006"}

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    one_bullet = len(tokenizer.encode(playbook.render(playbook.bullets[:1]), add_special_tokens=False))
    refiner = Refiner(RefinePolicy(similarity_threshold=1.0, max_bullets=None, max_tokens=one_bullet + 10),
                      tokenizer=tokenizer)
    refiner(playbook)
    assert len(tokenizer.encode(playbook.render(), add_special_tokens=False)) <= one_bullet + 10
    assert [b.id for b in playbook.bullets] == ["str-00001"]  # the most helpful survives


# --- Reflector and Curator on a scripted LM ------------------------------------------------


def test_curator_parses_malformed_output_without_crashing():
    playbook = make_playbook(("strategies", "Convert percentages to decimals"))
    lm = DummyLM([{"operations": "ADD | pitfalls | Revenue is not profit\nADD | vibes | nope\ngarbage line\n"
                                 "UPDATE | str-00001 | Convert percentages to decimals first"}])
    with dspy.context(lm=lm):
        result = Curator()(playbook=playbook, task_input="q", diagnosis="d", key_insight="k")
    assert [op.op for op in result.operations] == ["add", "update"]
    assert result.malformed == ["ADD | vibes | nope", "garbage line"]

    unparseable = DummyLM([{"something_else": "x"}] * 2)  # ChatAdapter retries with JSON, then gives up
    result = Curator(lm=unparseable)(playbook=playbook, task_input="q", diagnosis="d", key_insight="k")
    assert result.operations == [] and len(result.malformed) == 1


def test_reflector_treats_echoed_template_placeholders_as_no_answer():
    lm = DummyLM([{"diagnosis": " {urgency} ", "key_insight": "Check {units} first", "bullet_tags": "{bullet_tags}"},
                  {"diagnosis": "wrong unit", "key_insight": "# [key_insight] # [key_insight]", "bullet_tags": ""}])
    with dspy.context(lm=lm):
        result = Reflector()(task_input="q", program_output="a", feedback="score 0", bullets=[])
        looped = Reflector()(task_input="q", program_output="a", feedback="score 0", bullets=[])
    assert (result.diagnosis, result.key_insight) == ("", "Check {units} first")
    assert result.malformed == ["{bullet_tags}", "diagnosis '{urgency}' only echoes the format template"]
    assert looped.key_insight == ""  # the looped markers a 135M model wrote into a healthcare playbook


def test_reflector_uses_its_own_lm_and_keeps_tags_to_shown_bullets():
    playbook = make_playbook(("strategies", "a"), ("pitfalls", "b"))
    own = DummyLM([{"diagnosis": "used the wrong period", "key_insight": "match periods",
                    "bullet_tags": "str-00001: harmful\npit-00002: helpful"}])
    with dspy.context(lm=DummyLM([])):  # the configured LM must not be used
        result = Reflector(lm=own)(task_input="q", program_output="a", feedback="score 0",
                                   bullets=[playbook.get("str-00001")])
    assert result.key_insight == "match periods"
    assert result.tags == {"str-00001": "harmful"}
    assert result.malformed == ["pit-00002: helpful"]
    assert len(own.history) == 1


# --- CLI -----------------------------------------------------------------------------------


def test_cli_show_and_stats(tmp_path):
    playbook = make_playbook(("strategies", "a b c"), ("strategies", "d e"), ("pitfalls", "f"))
    apply_deltas(playbook, [CountOp(bullet_id="str-00001", helpful=5), CountOp(bullet_id="pit-00003", harmful=1)],
                 source="t")
    PlaybookStore(tmp_path).save(playbook)
    runner = CliRunner()

    shown = runner.invoke(playbook_app, ["show", "finance", "--dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "[str-00001] helpful=5 harmful=0 :: a b c" in shown.output and "## pitfalls" in shown.output

    stats = runner.invoke(playbook_app, ["stats", "finance", "--dir", str(tmp_path)])
    assert stats.exit_code == 0, stats.output
    rows = {line.split()[0]: line.split()[1:] for line in stats.output.splitlines()[2:]}
    assert rows["strategies"][:4] == ["2", "5", "0", "1"] and rows["pitfalls"][:4] == ["1", "0", "1", "0"]
    assert "version 2" in stats.output and "bullets 3" in stats.output

    missing = runner.invoke(playbook_app, ["stats", "legal", "--dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no playbook" in missing.output
