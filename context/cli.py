"""`ax playbook show|stats DOMAIN`: read a domain's playbook without writing any code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ax.cli_common import handle_errors
from ax.context.store import DEFAULT_ROOT, PlaybookStore
from ax.context.tokens import token_counter

playbook_app = typer.Typer(help="Inspect ACE playbooks (evolving domain contexts).", no_args_is_help=True)

RootOption = Annotated[Path, typer.Option("--dir", help="Directory holding one folder per domain.")]


def _load(domain: str, root: Path):
    with handle_errors():
        return PlaybookStore(root).load(domain, create=False)


@playbook_app.command()
def show(domain: str, root: RootOption = DEFAULT_ROOT) -> None:
    """Print the playbook as the program sees it: one line per bullet with its counters, by section."""
    playbook = _load(domain, root)
    typer.echo(f"# {playbook.domain} playbook, version {playbook.version}, {len(playbook.bullets)} bullets")
    typer.echo(playbook.render())


@playbook_app.command()
def stats(domain: str, root: RootOption = DEFAULT_ROOT,
          tokenizer: Annotated[str | None, typer.Option(help="Model path or hub id whose tokenizer counts "
                                                             "tokens (default: whitespace words).")] = None) -> None:
    """Bullets per section, helpful/harmful totals, and the rendered playbook's size in tokens."""
    playbook = _load(domain, root)
    count = token_counter(tokenizer)
    unit = "tokens" if tokenizer else "words"
    typer.echo(f"domain {playbook.domain}  version {playbook.version}  bullets {len(playbook.bullets)}  "
               f"{unit} {count(playbook.render())}  deltas applied {len(playbook.history)}")
    typer.echo(f"{'section':<20}{'bullets':>8}{'helpful':>9}{'harmful':>9}{'unused':>8}{unit:>8}")
    for section in playbook.sections():
        bullets = [b for b in playbook.bullets if b.section == section]
        typer.echo(f"{section:<20}{len(bullets):>8}{sum(b.helpful for b in bullets):>9}"
                   f"{sum(b.harmful for b in bullets):>9}{sum(not (b.helpful or b.harmful) for b in bullets):>8}"
                   f"{count(playbook.render(bullets)):>8}")
