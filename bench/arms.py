"""Do the arms really run? GEPA proposals, GEPA and LoRA+GEPA contrasts, playbook on vs off, per domain.

    python bench/arms.py --domain healthcare --domain research [--seeds 0,1,2] [--run-dir runs/arms]
    python bench/arms.py --fixture sentences --fixture passage_qa --run-dir runs/arms_fixtures
    python bench/arms.py --summarize runs/main runs/arms_fixtures      # tables only, from finished runs
    python bench/arms.py --domain support_agent --domain claim_check --domain tool_agent \
        --no-context --run-dir runs/agents                             # the multi-step domains

Each domain runs the main job (`ax compare --ablate-context`, quick preset unless --preset): the four
configurations with their playbooks, plus each one's `-no-playbook` twin (the same stages, nothing
optimized twice). A fixture is first generated (ax.programs.fixtures) and imported the way a user
imports a file (`ax data import`; the passage set with two input fields, question and passage). The
run directory resumes: finished stages and stored answers are reused.

The tables come from the run directory's report.json and GEPA stage files: per seed, GEPA proposals
made and accepted and whether the program changed; GEPA-only minus baseline and LoRA+GEPA minus
LoRA-only, paired per seed (item bootstrap, "not measured" where GEPA changed nothing); each cell with
its playbook minus without it (items and runs resampled); for multi-step programs each step's accuracy
per cell and, for tool agents, how many runs finished within the step limit. There is no baseline method here: the
comparison is between ax's own arms, on the same items.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIXTURES = {  # name -> (generator, rows, input columns, label column)
    "sentences": ("sentences", 600, ["text"], "label"),
    "passage_qa": ("passage_qa", 300, ["question", "passage"], "answer"),
}


def _points(estimate: dict | None, reason: str | None) -> str:
    if estimate is None:
        return f"not measured ({reason.split(' (')[0]})" if reason else "—"
    return f"{100 * estimate['estimate']:+.1f} [{100 * estimate['low']:+.1f}, {100 * estimate['high']:+.1f}]"


def import_fixture(name: str, run_dir: Path) -> str:
    from ax.programs import fixtures
    from ax.programs.imported import import_domain

    generator, rows, inputs, label = FIXTURES[name]
    path = fixtures.write_jsonl(getattr(fixtures, generator)(rows, seed=0), run_dir / "fixtures" / f"{name}.jsonl")
    domain = f"fixture_{name}"
    result = import_domain(path, domain, inputs, label, overwrite=True)
    print(f"imported {path} as {domain!r}: splits {result.split_sizes}", flush=True)
    return domain


def _predictors(outcome: dict) -> str:
    """Each predictor's instruction: changed (with the validation gain of the proposals that changed it) or kept."""
    return ", ".join(f"{p['name']} {'changed' if p['changed'] else 'kept'} ({p['val_gain']:+.2f})"
                     for p in outcome.get("predictors", [])) or "—"


def gepa_stages(run_dir: Path, domain: str) -> list[tuple[int, dict]]:
    """(seed, outcome.json) of each seed's GEPA stage."""
    out = []
    for outcome in sorted((run_dir / domain).glob("seed-*/stages/gepa/outcome.json")):
        out.append((int(outcome.parents[2].name.removeprefix("seed-")), json.loads(outcome.read_text())))
    return out


def summarize(run_dir: Path) -> None:
    report = json.loads((run_dir / "report" / "report.json").read_text())
    print(f"\n## {run_dir} ({report['command']})\n")
    print("| domain | items | majority floor (accuracy / macro-F1) | cell | accuracy [95% CI] | macro-F1 | flags |")
    print("|---|---|---|---|---|---|---|")
    for c in report["comparisons"]:
        floors = c.get("floors") or {}
        floor = (f"{100 * floors['majority']:.1f}% / {100 * floors['majority_macro_f1']:.1f}%"
                 if floors.get("majority_macro_f1") is not None else f"{100 * floors.get('majority', 0):.1f}%")
        for cell in c["cells"]:
            acc = cell["accuracy"]
            f1 = f"{100 * cell['classes']['macro_f1']:.1f}%" if cell.get("classes") else "—"
            print(f"| {c['domain']} | {c['items']} | {floor} | {cell['cell']} | {100 * acc['estimate']:.1f}% "
                  f"[{100 * acc['low']:.1f}, {100 * acc['high']:.1f}] | {f1} | {', '.join(cell['flags']) or 'none'} |")
    print("\n| domain | seed | GEPA proposer | proposals | accepted | program changed | GEPA − baseline "
          "| LoRA+GEPA − LoRA | predictors (validation gain) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in report["comparisons"]:
        pairs = {(p["a"], p["b"], p["run_a"].rsplit("-s", 1)[1]): p for p in c["pairwise"]}
        for seed, outcome in gepa_stages(run_dir, c["domain"]):
            gepa, combined = pairs.get(("gepa", "baseline", str(seed))), pairs.get(("lora+gepa", "lora", str(seed)))
            print(f"| {c['domain']} | {seed} | {outcome['proposer']} | {outcome['stall']['proposals']} | "
                  f"{outcome['stall']['accepted']} | {'yes' if outcome['best_index'] != 0 else 'no'} | "
                  + " | ".join(_points(p["difference"], p["not_measured"]) if p else "—" for p in (gepa, combined))
                  + f" | {_predictors(outcome)} |")
    print("\n| domain | macro-F1 contrast | points [95% CI] |")
    print("|---|---|---|")
    for c in report["comparisons"]:
        for x in c.get("class_contrasts", []):
            print(f"| {c['domain']} | {x['contrast']} | {_points(x['macro_f1'], x['not_measured'])} |")
    if any(c.get("playbook") for c in report["comparisons"]):
        print("\n| domain | cell | runs | with playbook | without | on − off, points [95% CI] |")
        print("|---|---|---|---|---|---|")
    for c in report["comparisons"]:
        for x in c.get("playbook", []):
            print(f"| {c['domain']} | {x['cell']} | {x['runs']} | {100 * x['with_playbook']:.1f}% | "
                  f"{100 * x['without_playbook']:.1f}% | {_points(x['difference'], x['not_measured'])} |")
    agent_tables(run_dir, report)


def agent_tables(run_dir: Path, report: dict) -> None:
    """Multi-step domains: each step's accuracy per cell, and for tool agents the share of runs that finished."""
    from ax.evals.comparison import comparison_rows
    from ax.evals.matrix_store import ResponseStore

    if any(c.get("steps") for c in report["comparisons"]):
        print("\n| domain | cell | step | accuracy [95% CI] |")
        print("|---|---|---|---|")
    for c in report["comparisons"]:
        for x in c.get("steps", []):
            acc = x["accuracy"]
            print(f"| {c['domain']} | {x['cell']} | {x['step']} | {100 * acc['estimate']:.1f}% "
                  f"[{100 * acc['low']:.1f}, {100 * acc['high']:.1f}] |")
    store = ResponseStore(run_dir)
    for c in report["comparisons"]:
        matrix = store.matrix(c["domain"], c.get("split"))
        by_cell, _ = comparison_rows(matrix)
        finished = {cell: [out.get("finished") for r in rows for out in matrix.outputs[r].values()]
                    for cell, rows in by_cell.items()}
        if not any(value is not None for values in finished.values() for value in values):
            continue
        print(f"\n{c['domain']}: runs that finished within the step limit (answers that parsed)\n")
        print("| cell | finished | of |")
        print("|---|---|---|")
        for cell, values in finished.items():
            print(f"| {cell} | {sum(bool(v) for v in values)} | {len(values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", action="append", default=[], help="a built-in or imported domain (repeatable)")
    parser.add_argument("--fixture", action="append", default=[], choices=sorted(FIXTURES),
                        help="a generated dataset shaped like a public one, imported first (repeatable)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/arms"))
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for optimizing (domain, seed) pairs and for answering (ax compare --workers)")
    parser.add_argument("--summarize", nargs="+", type=Path, help="only print the tables of these run directories")
    parser.add_argument("--no-ablate-context", dest="ablate_context", action="store_false",
                        help="answer with the playbooks only (no playbook-off twins): half the answering")
    parser.add_argument("--no-context", dest="context", action="store_false",
                        help="no ACE playbooks at all (implies --no-ablate-context)")
    args = parser.parse_args()
    if args.summarize:
        for run_dir in args.summarize:
            summarize(run_dir)
        return
    from ax.pipeline import compare

    domains = args.domain + [import_fixture(name, args.run_dir) for name in args.fixture]
    compare(domains, preset=args.preset, seeds=[int(s) for s in args.seeds.split(",")], run_dir=args.run_dir,
            context=args.context, ablate_context=args.ablate_context and args.context, workers=args.workers)
    summarize(args.run_dir)


if __name__ == "__main__":
    main()
