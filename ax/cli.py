"""The `ax` command line: one typer app, with each part's commands mounted from its own package."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ax.adapter_store import list_adapters
from ax.cli_common import ABLATE_CONTEXT, DTYPE, WORKERS, Seeds, handle_errors, seeds_option
from ax.errors import AxError
from ax.model import DEFAULT_MODEL, cache_dir, embedded_gguf_path

app = typer.Typer(help="ax: LoRA + GEPA optimization of DSPy programs, evaluated with IRT.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()

# (module, attribute, name): sub-apps and commands that live beside the code they drive.
_MOUNTS = [
    ("ax.programs.cli", "data_app", "data"),
    ("ax.programs.cli", "domains_app", "domains"),
    ("ax.context.cli", "playbook_app", "playbook"),
    ("ax.adapters.cli", "adapters_app", "adapters"),
]
_COMMANDS = [
    ("ax.adapters.cli", "train_cmd", "train"),
    ("ax.adapters.cli", "merge_cmd", "merge"),
    ("ax.adapters.cli", "ablate_cmd", "ablate"),
    ("ax.evals.cli", "evaluate_cmd", "evaluate"),
    ("ax.evals.cli", "report_cmd", "report"),
    ("ax.optimizers.cli", "optimize_cmd", "optimize"),
]


def _mount() -> None:
    for module_name, attribute, name in _MOUNTS + _COMMANDS:
        target = getattr(importlib.import_module(module_name), attribute)
        if (module_name, attribute, name) in _MOUNTS:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


@app.command()
def models(adapter_root: Optional[str] = typer.Option(None, help="Adapter store to list (default: ax's cache).")):
    """Show the default model, converted model copies and stored adapters."""
    table = Table(title="Models")
    table.add_column("name")
    table.add_column("where")
    try:
        table.add_row(f"{DEFAULT_MODEL} (default)", str(embedded_gguf_path()))
    except AxError as exc:
        table.add_row(f"{DEFAULT_MODEL} (default)", f"[red]{exc}[/red]")
    converted = cache_dir() / "models"
    for directory in sorted(converted.glob("*")) if converted.is_dir() else []:
        table.add_row(directory.name, str(directory))
    console.print(table)

    adapters = Table(title="Adapters")
    for column in ("name", "domain", "base model", "path"):
        adapters.add_column(column)
    for stored in list_adapters(adapter_root):
        adapters.add_row(stored.name, stored.domain or "-", stored.base_model or f"[red]{stored.problem}[/red]",
                         str(stored.path))
    console.print(adapters)


@app.command()
def compare(
    domain: list[str] = typer.Option(["customer_service"], "--domain", help="Domain to compare (repeatable)."),
    preset: str = typer.Option("quick", help="Budget preset: quick, light, medium, heavy, or a preset .json file."),
    seeds: Seeds = seeds_option("0", help="Comma-separated seeds; synergy needs 3 or more per configuration."),
    model: Optional[str] = typer.Option(None, help="Base model: 'smollm2' (default), an HF directory, a .gguf or a hub id."),
    dtype: Optional[str] = DTYPE,
    run_dir: Path = typer.Option(Path("ax_runs"), help="Where stages, answers and the report go; rerun to resume."),
    reflection_lm: Optional[str] = typer.Option(None, help="litellm model for GEPA reflection (default: the local model)."),
    context: bool = typer.Option(True, "--context/--no-context",
                                 help="Feed every configuration an ACE playbook adapted on the train examples."),
    ablate_context: bool = ABLATE_CONTEXT,
    workers: int = WORKERS,
    adaptive: bool = typer.Option(
        False, help="Answer the comparison configurations only on the items adaptive testing picks (test splits of "
                    "200+ items, 10+ other respondents that answered every item); the report gives each one's "
                    "forecast accuracy with its error. Otherwise every item is answered, and the reason printed."),
):
    """The main job: optimize baseline / LoRA / GEPA / LoRA+GEPA per domain, evaluate them, write the IRT report."""
    from ax.pipeline import compare as run_compare  # scipy and matplotlib (the report): not for `ax --help`

    with handle_errors():
        run_compare(domain, preset=preset, seeds=seeds, model=model, dtype=dtype, run_dir=run_dir,
                    reflection_lm=reflection_lm, context=context, ablate_context=ablate_context,
                    workers=workers, adaptive=adaptive)


def main() -> None:
    _mount()
    app()
