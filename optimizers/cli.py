"""`ax optimize`: the four configurations of a domain, for one seed or several (mounted by ax.cli).

    ax optimize --domain legal --configs baseline,lora,gepa,combined --seeds 0,1,2 --preset quick
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ax.cli_common import ABLATE_CONTEXT, DTYPE, WORKERS, Seeds, handle_errors, seeds_option
from ax.optimizers.configurations import optimize

console = Console(stderr=True)


def optimize_cmd(
    domain: str = typer.Option(..., "--domain", help="Domain to optimize (see `ax domains`)."),
    configs: str = typer.Option("baseline,lora,gepa,combined", "--configs",
                                help="Comma-separated: baseline, lora, gepa, combined, or strategies like lora->gepa."),
    seeds: Seeds = seeds_option("0", help="Comma-separated seeds, e.g. 0,1,2 (the evaluator wants 3+)."),
    preset: str = typer.Option("quick", "--preset", help="quick, light, medium, heavy, or a preset .json file."),
    run_dir: Path = typer.Option(Path("ax_runs"), "--run-dir", help="Where stages and manifests go; rerun to resume."),
    model: Optional[str] = typer.Option(None, "--model", help="'smollm2' (default), an HF dir, a .gguf or a hub id."),
    dtype: Optional[str] = DTYPE,
    combined: str = typer.Option("gepa->lora", "--combined", help="The strategy of the 'combined' configuration."),
    reflection_lm: Optional[str] = typer.Option(None, "--reflection-lm",
                                                help="litellm model for GEPA/ACE reflection (default: the local model)."),
    playbook: Optional[Path] = typer.Option(None, "--playbook", help="A playbook.json every configuration starts from."),
    context: bool = typer.Option(True, "--context/--no-context",
                                 help="End each configuration with an ACE playbook adapted on the train examples."),
    ablate_context: bool = ABLATE_CONTEXT,
    workers: int = WORKERS,
) -> None:
    """Optimize a domain into baseline / LoRA / GEPA / LoRA+GEPA configurations, each with a manifest."""
    with handle_errors():
        manifests = optimize(domain, configs=[c.strip() for c in configs.split(",") if c.strip()], seeds=seeds,
                             preset=preset, run_dir=run_dir, model=model, dtype=dtype, combined=combined,
                             reflection_lm=reflection_lm, playbook=playbook, context=context,
                             ablate_context=ablate_context, console=console, workers=workers)
    console.print(f"{len(manifests)} manifests under {run_dir / domain}")
