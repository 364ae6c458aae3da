"""`ax data import`, `ax domains list` and `ax domains stats` (mounted on the main `ax` app by ax.cli)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ax.cli_common import handle_errors
from ax.errors import AxError
from ax.programs.floors import NEAR_COPY, domain_stats
from ax.programs.imported import DEFAULT_DOMAINS_DIR, DEFAULT_MAX_INPUT_TOKENS, import_domain
from ax.programs.registry import get_domain, list_domains

data_app = typer.Typer(help="Bring your own data into ax.", no_args_is_help=True)
domains_app = typer.Typer(help="Built-in and imported domains.", no_args_is_help=True)


# A callback keeps each app a command group even with one command, so `import` and `list`
# stay subcommands both here and once mounted on the main `ax` app.
@data_app.callback()
def _data_group() -> None:
    """Bring your own data into ax."""


@domains_app.callback()
def _domains_group() -> None:
    """Built-in and imported domains."""


def _size(text: str) -> float:
    """A split size as given: a share (0.1) or a row count (500)."""
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a share like 0.1 nor a row count like 500") from None


@data_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="JSONL or CSV file, one labelled example per row."),
    domain: str = typer.Option(..., "--domain", help="Name for the new domain."),
    input_col: list[str] = typer.Option(..., "--input", help="Column holding an input of the program (repeatable: "
                                        "--input question --input passage; a nested JSONL key as a.b)."),
    label_col: str = typer.Option(..., "--label", help="Column holding the gold answer."),
    task: Optional[str] = typer.Option(None, "--task", help="classification (label set from the data) or extraction "
                                       "(exact text); default: classification unless most labels occur once."),
    out: Path = typer.Option(DEFAULT_DOMAINS_DIR, "--out", help="Directory that holds saved domains."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Column with stable example ids (default: row order)."),
    force: bool = typer.Option(False, "--force", help="Replace a domain of the same name in --out."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of FILE, e.g. latin-1 or cp1252 (a UTF-8 BOM is fine)."),
    dev_size: str = typer.Option("0.2", "--dev-size", help="Dev split: a share (0.2) or a row count (500)."),
    test_size: str = typer.Option("0.2", "--test-size", help="Test split: a share (0.2) or a row count (500)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Keep this many rows, each label's share kept."),
    max_input_tokens: int = typer.Option(DEFAULT_MAX_INPUT_TOKENS, "--max-input-tokens",
                                         help="Cut longer inputs to this many tokens (counted and reported)."),
    model: Optional[str] = typer.Option(None, "--model", help="Whose tokenizer counts tokens (default: the embedded model)."),
) -> None:
    """Validate FILE, split it (60/20/20 by default) and save it as a domain that `--domain NAME` finds later."""
    with handle_errors():
        result = import_domain(file, domain, input_col, label_col, task=task, out=out, id_col=id_col,  # type: ignore[arg-type]
                               overwrite=force, encoding=encoding, dev_size=_size(dev_size), test_size=_size(test_size),
                               sample=sample, max_input_tokens=max_input_tokens, model=model)
    summary, task = result.summary, result.domain.task
    table = Table(title=f"Imported domain '{domain}' ({task})", show_header=False)
    table.add_row("source", f"{summary.source} ({summary.format})")
    kept = sum(result.split_sizes.values())
    table.add_row("rows loaded", str(summary.rows) + (f" ({kept} sampled)" if kept != summary.rows else ""))
    table.add_row("fields", ", ".join(f"{field} <- '{column}'" for field, column in
                                      zip([*result.domain.inputs(), result.domain.labels()[0]], [*input_col, label_col])))
    table.add_row("splits", "  ".join(f"{name} {size}" for name, size in result.split_sizes.items()))
    splits = result.domain.splits()
    counts = Counter(str(e[result.domain.labels()[0]]) for part in (splits.train, splits.dev, splits.test) for e in part)
    shown = counts.most_common(10)
    more = f"  (+{len(counts) - 10} more)" if len(counts) > 10 else ""
    table.add_row(f"labels ({len(counts)})" if task == "classification" else "answers",
                  ", ".join(f"{k}: {v}" for k, v in shown) + more)
    table.add_row("saved to", str(result.directory))
    Console().print(table)  # created per call so the terminal width is read when printing
    for warning in result.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@domains_app.command("list")
def list_command(
    root: Path = typer.Option(DEFAULT_DOMAINS_DIR, "--root", help="Directory that holds imported domains."),
) -> None:
    """Every domain ax can run: name, task kind, item count and split sizes."""
    table = Table(title="Domains")
    for column in ("name", "task", "items", "train", "dev", "test"):
        table.add_column(column, justify="left" if column in ("name", "task") else "right", no_wrap=True)
    broken = []  # a domain that fails to load is left out with a warning, so it cannot hide the others
    for name in list_domains(root=root):
        try:
            domain = get_domain(name, root=root)
            sizes = domain.splits().sizes()
        except AxError as error:
            broken.append(f"domain {name!r} not listed: {error}")
            continue
        table.add_row(name, domain.task, str(sum(sizes.values())), *(str(sizes[split]) for split in ("train", "dev", "test")))
    Console().print(table)  # created per call so the terminal width is read when printing
    for warning in broken:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@domains_app.command("stats")
def stats_command(
    names: Optional[list[str]] = typer.Argument(None, help="Domains to describe (default: all)."),
    root: Path = typer.Option(DEFAULT_DOMAINS_DIR, "--root", help="Directory that holds imported domains."),
) -> None:
    """Floors on each domain's test split, and how close its test items are to training items (no model)."""
    table = Table(title="Domain floors and train-test closeness (test split)")
    for column in ("domain", "task", "test", "majority label", "majority floor", "chance", "nearest-train floor",
                   "median overlap", f"near-copies (>= {NEAR_COPY})"):
        table.add_column(column, justify="left" if column in ("domain", "task", "majority label") else "right")
    with handle_errors():
        for name in names or list_domains(root=root):
            s = domain_stats(get_domain(name, root=root))
            table.add_row(name, s.task, str(s.sizes["test"]), s.majority_label, f"{s.majority_floor:.1%}",
                          "—" if s.chance is None else f"{s.chance:.1%}", f"{s.nearest_neighbour_floor:.1%}",
                          f"{s.median_overlap:.2f}", f"{s.near_copies:.0%}")
    Console().print(table)
    Console().print("majority floor: the most common gold answer's share (the best constant answer); nearest-train "
                    "floor: each test item answered with the label of the training item whose words overlap it most "
                    "(Jaccard); overlap: that Jaccard.", soft_wrap=True)
