"""`--workers N`: (domain, seed) optimizations in parallel processes leave the run directory a serial run leaves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ax.errors import AxError
from ax.optimizers.configurations import optimize
from ax.programs import import_domain
from ax.programs.fixtures import sentences, write_jsonl
from test_optimize_run import TINY, tiny_domain

# Times and dates; and hashes of the adapter's bytes, which float-summation order moves (compared by value below).
VOLATILE = {"created", "wall_s", "wall_time_s", "tokens_per_second", "steady_tokens_per_second", "fingerprint",
            "adapter_fingerprint"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.M)


def stable(value, run: Path):
    """A JSON value without what differs between two runs of the same work: times, hashes, the run's own path."""
    if isinstance(value, dict):
        return {k: sorted(v) if k == "target_modules" else stable(v, run)  # PEFT saves a set: hash-seed order
                for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v, run) for v in value]
    if isinstance(value, str):
        return value.replace(str(run.resolve()), "<run>").replace(f"{run.name}/", "<run>/")
    return value


def tree(run: Path) -> dict[str, object]:
    """Every file of a run directory as comparable values: JSON without volatile fields, logs without their
    timestamps, adapter weights as tensors, GEPA's pickled state by its presence."""
    out = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file() and ".lock" not in p.name):
        key = str(path.relative_to(run))
        if path.suffix == ".json":
            out[key] = stable(json.loads(path.read_text()), run)
        elif path.suffix == ".safetensors":
            out[key] = load_file(path)
        elif path.suffix == ".bin":
            out[key] = "present"  # GEPA's own resume state, a pickle
        else:
            out[key] = TIMESTAMP.sub("", path.read_text())
    return out


def test_two_workers_write_the_run_directory_one_process_writes(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # workers find the imported domain under ./ax_domains, as a user's do
    monkeypatch.setenv("AX_NO_CACHE", "1")  # each run answers for itself
    import_domain(write_jsonl(sentences(40), tmp_path / "s.jsonl"), "tinynews", "text", "label")
    options = dict(seeds=[0, 1], preset=TINY, model=str(tiny_model_dir), context=False, show_progress=False)
    serial = optimize("tinynews", run_dir=tmp_path / "serial", **options)
    parallel = optimize("tinynews", run_dir=tmp_path / "parallel", workers=2, **options)
    assert [(m.seed, m.config) for m in parallel] == [(m.seed, m.config) for m in serial]
    one, two = tree(tmp_path / "serial"), tree(tmp_path / "parallel")
    assert one.keys() == two.keys()
    weights = [key for key in one if key.endswith(".safetensors")]
    assert len(weights) == 4  # lora and gepa->lora, two seeds
    for key in weights:
        for name, tensor in one[key].items():
            torch.testing.assert_close(two[key][name], tensor, rtol=1e-4, atol=1e-6)
    differing = [key for key in one if key not in weights and one[key] != two[key]]
    assert not differing, differing


def test_workers_need_domains_a_new_process_can_find(tmp_path):
    import ax

    ax.register_domain(tiny_domain(), replace=True)
    with pytest.raises(AxError, match="'tinysent' exists only in this process"):
        optimize("tinysent", seeds=[0, 1], preset=TINY, run_dir=tmp_path, model="unused", workers=2)


def test_compare_with_workers_optimizes_and_answers_in_processes_as_one_process_does(tiny_model_dir, tmp_path,
                                                                                      monkeypatch):
    import ax
    from ax.configuration import CONFIGURATIONS_FILE, load_configurations
    from ax.evals.matrix_store import ResponseStore
    from ax.evals.runner import evaluate_run_dir
    from ax.pipeline import compare
    from ax.programs.registry import get_domain

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AX_NO_CACHE", "1")
    import_domain(write_jsonl(sentences(40), tmp_path / "s.jsonl"), "tinynews", "text", "label")
    preset = TINY.model_copy(update={"test_items": 3, "eval_threads": 2})
    files = compare(["tinynews"], preset=preset, seeds=[0, 1], model=str(tiny_model_dir), run_dir=tmp_path / "run",
                    context=False, workers=2, bootstrap=100, power_simulations=10)
    assert files.markdown.is_file()
    store = ResponseStore(tmp_path / "run")
    for config in ("baseline", "lora", "gepa", "combined"):
        for seed in (0, 1):
            assert len(store.read("tinynews", f"{config}-s{seed}").cells) == 3
    # One process answers the same configurations the same way the two evaluation workers did.
    serial = tmp_path / "serial"
    shutil.copytree(tmp_path / "run", serial, ignore=shutil.ignore_patterns("responses", "report"))
    configurations = load_configurations(serial / CONFIGURATIONS_FILE).select("tinynews")
    evaluate_run_dir(serial, configurations, get_domain("tinynews"), lm=ax.LM(str(tiny_model_dir)), limit=3,
                     num_threads=2)
    answers = {r.configuration.name: [(c.item, c.output, c.correct) for c in r.cells]
               for r in store.respondents("tinynews")}
    assert answers == {r.configuration.name: [(c.item, c.output, c.correct) for c in r.cells]
                       for r in ResponseStore(serial).respondents("tinynews")}


def test_workers_find_the_agent_domains():
    from ax.workers import check_findable

    check_findable(["support_agent", "claim_check", "tool_agent", "legal"])  # built in: no error


def test_the_rerun_command_names_the_dtype_a_comparison_answered_in(tmp_path):
    from ax.pipeline import compare_command

    words = compare_command(["legal"], "quick", [0, 1], None, tmp_path, None, dtype="bfloat16")
    assert "--dtype bfloat16" in words
    assert "--dtype" not in compare_command(["legal"], "quick", [0], None, tmp_path, None)
