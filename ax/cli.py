"""The `ax` command line: one typer app, with each part's commands mounted from its own package."""

from __future__ import annotations

import importlib
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

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
    ("ax.evals.cli", "evaluate_cmd", "evaluate"),
    ("ax.evals.cli", "report_cmd", "report"),
    ("ax.optimizers.cli", "optimize_cmd", "optimize"),
]


def _mount() -> None:
    for module_name, attribute, name in _MOUNTS + _COMMANDS:
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue  # a part not built yet; its commands appear once it exists
        if (module_name, attribute, name) in _MOUNTS:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


@app.command()
def models(adapter_root: Optional[str] = typer.Option(None, help="Adapter store to list (default: ax's cache).")):
    """Show the default model, converted model copies and stored adapters."""
    from ax.model import DEFAULT_MODEL, cache_dir, embedded_gguf_path
    from ax.errors import AxError

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
    try:
        from ax.adapters.store import list_adapters
    except ImportError:
        return
    adapters = Table(title="Adapters")
    for column in ("name", "domain", "base model", "path"):
        adapters.add_column(column)
    for stored in list_adapters(adapter_root):
        adapters.add_row(stored.name, stored.domain or "-", stored.base_model or f"[red]{stored.problem}[/red]",
                         str(stored.path))
    console.print(adapters)


@app.command()
def compare(
    model: str = typer.Option("smollm2", help="Base model: 'smollm2', an HF directory, a .gguf file or a hub id."),
    preset: str = typer.Option("quick", help="Budget preset."),
):
    """The main job: answer a few questions through the ax LM client and print usage."""
    import dspy

    import ax

    started = time.perf_counter()
    console.print(f"Loading {model} ...")
    lm = ax.LM(model, cache=False)
    dspy.configure(lm=lm)
    qa = dspy.Predict("question -> answer")
    questions = ["What is the capital of France?", "Is a contract clause binding on the tenant?",
                 "What is 12 plus 30?"]
    for question in questions:
        console.print(f"[bold]{question}[/bold] -> {qa(question=question).answer}")
    totals = lm.usage_summary()
    console.print(f"calls={totals['calls']} prompt_tokens={totals['prompt_tokens']} "
                  f"completion_tokens={totals['completion_tokens']} wall={time.perf_counter() - started:.1f}s")


def main() -> None:
    _mount()
    app()
