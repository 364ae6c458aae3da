"""The `ax` command line."""

import typer

app = typer.Typer(help="ax: LoRA + GEPA optimization of DSPy programs, evaluated with IRT.", no_args_is_help=True)


def main() -> None:
    app()
