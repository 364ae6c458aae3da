"""Reports from a synthetic response store (no model): files, numbers that match evals.stats, a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ax.configuration import CELL_NAMES, Configuration
from ax.errors import AxError
from ax.evals.irt import ItemParameters, calibrate, estimate_ability_eap, response_probability
from ax.evals.matrix_store import Cell, ItemRecord, RespondentRecord, ResponseStore
from ax.evals.stats import (
    FactorialResponses,
    hierarchical_bootstrap_interaction,
    holm_adjust,
    mcnemar_exact,
    mixed_model_interaction,
    paired_bootstrap_difference,
    wilson_interval,
)

SETTINGS = dict(n_bootstrap=200, seed=3, power_simulations=10)
CELL_LOGIT = {"baseline": -0.3, "lora": 0.2, "gepa": 0.3, "lora+gepa": 0.8}


def synthetic_run_dir(run_dir: Path, *, domains=("legal", "financial"), n_items=40, pool=30, seeds=(0,),
                      rng_seed=0) -> ResponseStore:
    """A run directory as `ax evaluate` leaves it: a calibration pool of variants plus the 2x2's runs per seed."""
    rng = np.random.default_rng(rng_seed)
    store = ResponseStore(run_dir, create=True)
    for domain in domains:
        ids = [f"{domain}-{j:06d}" for j in range(n_items)]
        store.register_items(domain, [ItemRecord(id=i, digest=f"{j:016d}", difficulty=("easy", "medium", "hard")[j % 3])
                                      for j, i in enumerate(ids)])
        items = ItemParameters(rng.normal(0, 1, n_items), rng.lognormal(0, 0.3, n_items), np.zeros(n_items))
        respondents = [(Configuration(name=f"cand-{k}", domain=domain, lora=False, gepa=True, role="calibration"),
                        rng.normal(0, 1)) for k in range(pool)]
        for (lora, gepa), cell in CELL_NAMES.items():
            for seed in seeds:
                adapter = Path(f"adapters/{domain}-{seed}") if lora else None
                respondents.append((Configuration(name=f"{cell.replace('+', '-')}-s{seed}", domain=domain, lora=lora,
                                                  gepa=gepa, seed=seed, adapter=adapter),
                                    CELL_LOGIT[cell] + rng.normal(0, 0.25)))
        for configuration, theta in respondents:
            correct = rng.random(n_items) < response_probability(theta, items)[0]
            store.write(RespondentRecord(
                configuration=configuration, identity=f"synthetic-{configuration.name}", model="tiny", model_fingerprint="f" * 16,
                adapter_fingerprint="a" * 64 if configuration.lora else None, versions={"ax": "0.1.0"},
                commands=[f"ax evaluate --domain {domain} --run-dir {run_dir}"],
                cells=[Cell(item=i, score=float(ok), correct=bool(ok), output={"answer": "x"})
                       for i, ok in zip(ids, correct)]))
    return store


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from ax.evals.render import write_report
    from ax.evals.report import ReportSettings, build_report

    run_dir = tmp_path_factory.mktemp("run")
    store = synthetic_run_dir(run_dir)
    report = build_report(run_dir, ReportSettings(**SETTINGS))
    return store, report, write_report(report, run_dir / "report")


def test_report_files_exist_and_json_round_trips(written):
    from ax.evals.report import Report

    _, report, files = written
    for path in (files.json_path, files.markdown, files.html, files.manifest):
        assert path.is_file() and path.stat().st_size > 0
    assert Report.model_validate_json(files.json_path.read_text()) == report
    manifest = json.loads(files.manifest.read_text())
    assert {d["domain"] for d in manifest["domains"]} == {"legal", "financial"}
    assert manifest["adapters"] and manifest["models"][0]["fingerprint"] == "f" * 16
    assert manifest["report_command"].startswith("ax report ")
    assert "--bootstrap 200 --seed 3" in manifest["report_command"]
    markdown = files.markdown.read_text()
    assert report.command in markdown and "ax evaluate --domain legal" in markdown
    assert markdown.count("## Domain:") == 2 and "## Pooled over domains" in markdown


def test_numbers_match_evals_stats_on_the_same_data(written):
    store, report, _ = written
    matrix = store.matrix("legal")
    comparison = next(c for c in report.comparisons if c.domain == "legal")
    rows = {c.name: i for i, c in enumerate(matrix.respondents)}
    run = {cell.cell: cell.runs[0].name for cell in comparison.cells}

    for cell in comparison.cells:  # one run per cell: Wilson
        x = matrix.correct[rows[cell.runs[0].name]]
        expected = wilson_interval(int(x.sum()), x.size)
        assert (cell.accuracy.estimate, cell.accuracy.low, cell.accuracy.high) == pytest.approx(
            (expected.estimate, expected.low, expected.high))

    pairwise = comparison.pairwise
    assert len(pairwise) == 6
    for row in pairwise:
        a, b = matrix.correct[rows[row.run_a]], matrix.correct[rows[row.run_b]]
        difference = paired_bootstrap_difference(a, b, n_bootstrap=SETTINGS["n_bootstrap"], seed=SETTINGS["seed"])
        assert (row.difference.low, row.difference.high) == pytest.approx((difference.low, difference.high))
        assert row.p_value == pytest.approx(mcnemar_exact(a, b).p_value)
    assert [r.p_holm for r in pairwise] == pytest.approx(holm_adjust([r.p_value for r in pairwise]).tolist())

    chosen = [rows[run[cell]] for cell in ("baseline", "lora", "gepa", "lora+gepa")]
    table = FactorialResponses(
        run_id=np.repeat([matrix.respondents[r].name for r in chosen], matrix.correct.shape[1]),
        lora=np.repeat([matrix.respondents[r].lora for r in chosen], matrix.correct.shape[1]),
        gepa=np.repeat([matrix.respondents[r].gepa for r in chosen], matrix.correct.shape[1]),
        item_id=np.tile(matrix.item_ids, 4), correct=matrix.correct[chosen].reshape(-1).astype(int))
    interval = hierarchical_bootstrap_interaction(table, n_bootstrap=SETTINGS["n_bootstrap"], seed=SETTINGS["seed"])
    assert comparison.synergy.logit.estimate == pytest.approx(interval.logit.estimate)
    assert (comparison.synergy.accuracy.low, comparison.synergy.accuracy.high) == pytest.approx(
        (interval.accuracy.low, interval.accuracy.high))
    mixed = mixed_model_interaction(table, seed=SETTINGS["seed"])
    assert comparison.synergy.mixed.p_value == pytest.approx(mixed.p_value)

    calibration = next(c for c in report.calibrations if c.domain == "legal")
    assert calibration.irt_model == "1pl" and calibration.respondents == 34  # below the 2PL threshold of 100
    theta = estimate_ability_eap(matrix.correct, calibrate(matrix.correct, "1pl").items).theta
    assert comparison.cells[0].runs[0].ability == pytest.approx(theta[rows[run["baseline"]]])


def test_one_seed_design_is_flagged(written):
    _, report, files = written
    for comparison in [*report.comparisons, report.pooled]:
        assert comparison.synergy.captures_run_variance is False
        assert any("cannot be told apart from run-to-run variance" in s for s in comparison.verdict.sentences)
    assert "cannot be told apart from run-to-run variance" in files.markdown.read_text()


def test_three_seeds_use_run_level_intervals_and_are_not_flagged(tmp_path):
    from ax.evals.calibration import calibrate_pool
    from ax.evals.comparison import compare_domain

    store = synthetic_run_dir(tmp_path, domains=("legal",), pool=10, seeds=(0, 1, 2))
    matrix = store.matrix("legal")
    comparison = compare_domain(matrix, calibrate_pool(matrix), **SETTINGS)
    assert all(c.accuracy_method == "run-level bootstrap" and len(c.runs) == 3 for c in comparison.cells)
    assert comparison.synergy.captures_run_variance and comparison.synergy.power.runs_per_cell == 3
    assert len(comparison.pairwise) == 18  # 6 cell pairs x 3 seed-matched runs, one Holm family
    assert not any("run-to-run" in s for s in comparison.verdict.sentences)
    assert any(s.startswith("Power: with 40 items and 3 run(s) per cell") for s in comparison.verdict.sentences)


def test_adaptive_section_reports_items_used_against_error(written):
    _, report, files = written
    check = next(c for c in report.adaptive if c.domain == "legal")
    assert check.pool == 34 and len(check.runs) == 4 and check.items == 40
    assert [(b.method, b.max_items) for b in check.budgets] == [
        ("irt", 4), ("irt", 10), ("irt", 20), ("sampled", 4), ("sampled", 10), ("sampled", 20)]
    assert all(1 <= b.mean_items_used <= b.max_items for b in check.budgets)
    for method in ("irt", "sampled"):
        errors = [b.mean_abs_error for b in check.budgets if b.method == method]
        assert all(0 <= e < 0.5 for e in errors) and errors[-1] <= errors[0] + 0.05
    assert all(b.random_items_error > 0 for b in check.budgets)
    assert "under 200" in check.sentence and "sampling floor" in check.sentence and not check.goal_met
    text = files.markdown.read_text()
    assert "items used (mean)" in text and "## Adaptive evaluation" in text and "as many random items" in text


def test_report_command_on_a_bad_run_dir_names_it(tmp_path):
    import typer
    from typer.testing import CliRunner

    from ax.evals.cli import report_cmd
    from ax.evals.report import build_report

    with pytest.raises(AxError, match=re.escape(str(tmp_path / "nope"))):
        build_report(tmp_path / "nope")
    app = typer.Typer()
    app.command()(report_cmd)
    result = CliRunner().invoke(app, [str(tmp_path)])
    assert result.exit_code == 1 and "has no responses/ directory" in result.output


def _chromium() -> str | None:
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


_PROBE = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-plots',"
          "[...document.querySelectorAll('img.plot')].map(i=>i.complete&&i.naturalWidth>0?"
          "i.naturalWidth+'x'+i.naturalHeight:'broken').join(' '))});</script>")


def test_plots_render_in_headless_chromium(written, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver)")
    _, _, files = written
    page = tmp_path / "probe.html"  # the report plus a probe script; the report itself has no script
    page.write_text(files.html.read_text().replace("</body>", _PROBE + "</body>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'data-plots="([^"]*)"', result.stdout)
    assert found, f"no probe result in the DOM; chromium stderr: {result.stderr[-2000:]}"
    sizes = found.group(1).split()
    assert len(sizes) == 6 and "broken" not in sizes, sizes
    assert all(int(w) > 100 and int(h) > 100 for w, h in (s.split("x") for s in sizes))


def test_report_survives_uncalibratable_items_and_missing_cells(tmp_path):
    from ax.evals.render import write_report
    from ax.evals.report import ReportSettings, build_report

    store = ResponseStore(tmp_path, create=True)
    store.register_items("legal", [ItemRecord(id=f"i{j}", digest=f"d{j}") for j in range(8)])
    for name, gepa in (("baseline-s0", False), ("gepa-s0", True)):
        store.write(RespondentRecord(
            configuration=Configuration(name=name, domain="legal", lora=False, gepa=gepa), identity=f"x-{name}", model="m",
            model_fingerprint="fp", cells=[Cell(item=f"i{j}", score=0.0, correct=False) for j in range(8)]))
    report = build_report(tmp_path, ReportSettings(**SETTINGS))
    calibration, comparison = report.calibrations[0], report.comparisons[0]
    assert calibration.irt_model == "none" and "none of the 8 items can be calibrated" in calibration.note
    assert comparison.missing_cells == ["lora", "lora+gepa"] and comparison.synergy is None
    assert comparison.cells[0].ability is None and "no comparison of the combination" in comparison.verdict.sentences[0]
    assert report.pooled is None and not report.adaptive
    assert write_report(report, tmp_path / "report").html.is_file()


def test_a_tie_with_the_best_single_method_is_not_called_worse():
    from ax.evals.comparison import Estimate, outcome_against_best

    def outcome(low, high):
        return outcome_against_best(Estimate(estimate=(low + high) / 2, low=low, high=high))

    assert outcome(0.0, 0.0) == "did not clearly beat"  # identical answers
    assert outcome(-0.05, 0.1) == "did not clearly beat"
    assert outcome(0.01, 0.1) == "beat" and outcome(-0.1, -0.01) == "was worse than"
