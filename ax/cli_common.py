"""What the `ax` commands share: how an AxError ends a command, the `--seeds` option, and the options
`ax compare` (ax/cli.py) and `ax optimize` (optimizers/cli.py) both take.

Each part's cli.py imports this module; it is not in ax/cli.py because ax/cli.py mounts the parts'
commands, so a part importing it would import the app above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NewType

import typer
from rich.console import Console
from rich.markup import escape

from ax.errors import AxError

ABLATE_CONTEXT = typer.Option(False, "--ablate-context", help="Also answer with each configuration without its playbook "
                              "(<config>-no-playbook, no extra optimization); the report measures playbook on vs off.")
DTYPE = typer.Option(None, "--dtype", help="The local model's weights: bfloat16 (the default on a GPU and on a CPU "
                     "with native bf16: faster there than float32 at accuracy within noise, README "
                     "'Measured') or float32 (the default on other CPUs; the GGUF's weights exactly).")
WORKERS = typer.Option(1, "--workers", min=1,
                       help="Processes at once, each with its own model (a GPU each where there are several): one per "
                       "(domain, seed) optimization, and the answering split between them by seed.")


@contextmanager
def handle_errors() -> Iterator[None]:
    """Around a command's work: an AxError ends the command as one red `error: ...` line on stderr, exit status 1."""
    try:
        yield
    except AxError as error:
        # One line whatever the terminal width, and brackets in paths or values are not taken for markup.
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


# What a `--seeds` option (`seeds_option`) hands its command: at least one seed, each once, none negative.
# A plain list at run time; typed ``list[int]`` typer would make the option repeatable instead.
Seeds = NewType("Seeds", list[int])


def _parse_seeds(text: str) -> Seeds:
    """'0,1,2' -> [0, 1, 2]. A refusal ends the command as an AxError does (exit status 1), not as a usage error."""
    with handle_errors():
        try:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise AxError(f"--seeds {text!r}: give comma-separated integers such as 0,1,2") from None
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise AxError(f"--seeds {text!r}: give at least one seed, each once, none negative")
    return Seeds(seeds)


def seeds_option(default: str, help: str) -> Any:
    """The `--seeds` option: comma-separated seeds (`--seeds 0,1,2`), declared as ``seeds: Seeds = seeds_option(...)``."""
    return typer.Option(default, "--seeds", parser=_parse_seeds, metavar="<str>", help=help)
