"""Configurations and the response store: the contract with the optimizers' run directories, atomic files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ax.configuration import Configuration, ConfigurationSet, load_configurations
from ax.errors import AxError
from ax.evals.matrix_store import Cell, ItemRecord, RespondentRecord, ResponseStore


def _record(name: str, cells: dict[str, bool], **flags) -> RespondentRecord:
    configuration = Configuration(name=name, domain="legal", lora=False, gepa=False, **flags)
    return RespondentRecord(configuration=configuration, identity="id", model="m", model_fingerprint="fp",
                            cells=[Cell(item=item, score=float(ok), correct=ok) for item, ok in cells.items()])


def test_configurations_resolve_relative_paths_and_check_their_design(tmp_path):
    path = tmp_path / "runs" / "configurations.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"configurations": [
        {"name": "lora-gepa-s1", "domain": "legal", "lora": True, "gepa": True, "seed": 1,
         "program": "legal/s1/best_program.json", "adapter": "legal/s1/adapter"},
        {"name": "cand-3", "domain": "legal", "lora": False, "gepa": True, "role": "calibration",
         "instructions": {"predict": "Classify the clause."}},
    ]}))
    loaded = load_configurations(path)
    first = loaded.configurations[0]
    assert first.program == path.parent / "legal/s1/best_program.json"
    assert first.adapter == path.parent / "legal/s1/adapter" and first.cell == "lora+gepa"
    assert [c.name for c in loaded.select("legal", ["cand-3"])] == ["cand-3"]
    with pytest.raises(AxError, match="no configuration named 'nope'"):
        loaded.select("legal", ["nope"])
    with pytest.raises(ValueError, match="lora must be true exactly when an adapter is given"):
        Configuration(name="x", domain="legal", lora=True, gepa=False)
    with pytest.raises(ValueError, match="appears twice"):
        ConfigurationSet(configurations=[loaded.configurations[1], loaded.configurations[1]])
    path.write_text("{not json")
    with pytest.raises(AxError, match=str(path)):
        load_configurations(path)


def test_build_applies_instructions_and_refuses_unknown_predictors():
    from ax.programs import get_domain

    domain = get_domain("legal")
    configuration = Configuration(name="c", domain="legal", lora=False, gepa=True,
                                  instructions={"predict": "Name the obligated party first."})
    program, _ = configuration.build(domain)
    assert program.predict.signature.instructions == "Name the obligated party first."
    wrong = configuration.model_copy(update={"instructions": {"extract": "x"}})
    with pytest.raises(AxError, match="predictors are \\['predict'\\]"):
        wrong.build(domain)


def test_store_round_trip_matrix_and_item_content_check(tmp_path):
    store = ResponseStore(tmp_path, create=True)
    store.register_items("legal", [ItemRecord(id=f"i{j}", digest=f"d{j}") for j in range(3)])
    store.write(_record("a", {"i0": True, "i1": False, "i2": True}))
    store.write(_record("b", {"i1": True}))
    matrix = ResponseStore(tmp_path).matrix("legal")
    assert [c.name for c in matrix.respondents] == ["a", "b"]
    np.testing.assert_array_equal(matrix.correct, [[1, 0, 1], [np.nan, 1, np.nan]])
    assert matrix.complete().tolist() == [True, False]
    assert not list(tmp_path.rglob(".*.tmp")), "atomic writes leave no temporary files"
    with pytest.raises(AxError, match="i1 changed content"):
        store.register_items("legal", [ItemRecord(id="i1", digest="other")])


def test_bad_run_dir_is_an_axerror_naming_it(tmp_path):
    with pytest.raises(AxError, match=str(tmp_path / "missing")):
        ResponseStore(tmp_path / "missing")
    with pytest.raises(AxError, match=f"{tmp_path} has no responses/ directory"):
        ResponseStore(tmp_path)
