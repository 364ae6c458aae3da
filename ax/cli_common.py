"""What the `ax` commands share: how an AxError ends a command, how `--seeds` is read, and the options
`ax compare` (ax/cli.py) and `ax optimize` (optimizers/cli.py) both take.

Each part's cli.py imports this module; it is not in ax/cli.py because ax/cli.py mounts the parts'
commands, so a part importing it would import the app above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from ax.errors import AxError

ABLATE_CONTEXT = typer.Option(False, "--ablate-context", help="Also answer with each configuration without its playbook "
                              "(<config>-no-playbook, no extra optimization); the report measures playbook on vs off.")
WORKERS = typer.Option(1, "--workers", min=1,
                       help="Optimize (domain, seed) pairs in this many processes at once (one GPU each).")


@contextmanager
def handle_errors() -> Iterator[None]:
    """Around a command's work: an AxError ends the command as one red `error: ...` line on stderr, exit status 1."""
    try:
        yield
    except AxError as error:
        # One line whatever the terminal width, and brackets in paths or values are not taken for markup.
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def parse_seeds(text: str) -> list[int]:
    """The `--seeds` option: '0,1,2' -> [0, 1, 2]; at least one, each once, none negative."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AxError(f"--seeds {text!r}: give comma-separated integers such as 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise AxError(f"--seeds {text!r}: give at least one seed, each once, none negative")
    return seeds
