"""Command line for adapters: `ax train`, `ax adapters list|show|delete`, `ax merge`, `ax ablate` (mounted by ax.cli).

torch and transformers are imported inside the commands that train, so `ax --help` stays fast.
"""

from __future__ import annotations

import shlex
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import ax
from ax.adapter_store import (
    adapter_path, check_weights, default_store_root, delete_adapter, list_adapters, read_manifest,
)
from ax.adapters.config import load_config
from ax.adapters.dataset import data_hash, domain_pairs
from ax.adapters.merge import merge_adapters, merge_into_base
from ax.adapters.peft_model import load_training_base
from ax.cli_common import Seeds, handle_errors, seeds_option
from ax.errors import AxError
from ax.evals.runner import domain_items
from ax.experiments.ablate import KINDS, sweep_settings
from ax.model import load_model
from ax.names import check_name
from ax.programs.registry import get_domain

console = Console()
adapters_app = typer.Typer(help="Stored LoRA adapters: list, show, delete.", no_args_is_help=True)

_ROOT_HELP = "Adapter store folder (default: <ax cache>/adapters)."


def train_cmd(
    domain: str = typer.Option(..., "--domain", help="Domain whose training split trains the adapter (ax domains)."),
    config: Optional[Path] = typer.Option(None, "--config", help="lora_config.yaml (default: the one shipped with ax)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="'smollm2' (default), an HF dir, a .gguf or a hub id."),
    output: Optional[Path] = typer.Option(None, "--output", "--output-dir", help="Adapter folder (default: <store>/<domain>)."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps (overrides epochs)."),
    num_epochs: Optional[float] = typer.Option(None, "--num-epochs"),
    r: Optional[int] = typer.Option(None, "--r", help="LoRA rank."),
    lora_alpha: Optional[float] = typer.Option(None, "--lora-alpha"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Per-device batch size."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of an interrupted run."),
) -> None:
    """Train a LoRA adapter for a domain and store it with its manifest."""
    with handle_errors():
        from ax.adapters.train import train_and_save  # torch and transformers, loaded only when the command runs

        settings = load_config(config, domain).with_overrides(
            max_steps=max_steps, num_epochs=num_epochs, r=r, lora_alpha=lora_alpha, weight_decay=weight_decay,
            learning_rate=learning_rate, per_device_batch_size=batch_size, seed=seed)
        target = output or (root or default_store_root()) / check_name("adapter", domain)
        task = get_domain(domain)
        console.print(f"Loading base model {base_model or 'smollm2'} ...")
        base = load_training_base(base_model, settings)
        train, dev = domain_pairs(base.tokenizer, task)
        console.print(f"Training {domain!r}: {len(train)} train / {len(dev)} dev examples, r={settings.r}, "
                      f"weight_decay={settings.weight_decay:g}, lr={settings.learning_rate:g}")
        result, manifest = train_and_save(base, train, settings, domain=domain, target=target,
                                          dev_pairs=dev or None, resume=resume)
    m = result.metrics
    if m.resumed_from_step is not None:
        console.print(f"Resumed from the checkpoint at step {m.resumed_from_step} of the interrupted run.")
    elif resume:
        console.print("--resume: no checkpoint of an interrupted run was found; trained from the start.")
    eval_text = f"{m.eval_loss:.4f}" if m.eval_loss is not None else "n/a"
    console.print(f"steps={m.steps} train_loss={m.train_loss:.4f} eval_loss={eval_text} "
                  f"tokens/s={m.tokens_per_second:,.0f} wall={m.wall_time_s:.1f}s")
    if manifest is not None:
        console.print(f"Saved adapter {manifest.name!r} to {target} (fingerprint {manifest.adapter_fingerprint[:16]})")


@adapters_app.command("list")
def list_cmd(root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP)) -> None:
    """Adapters in the store with their domain, base model and eval loss."""
    table = Table(title=f"Adapters in {root or 'the ax cache'}")
    for column in ("name", "domain", "base model", "eval loss", "created", "problem"):
        table.add_column(column)
    for stored in list_adapters(root):
        m = stored.manifest
        eval_loss = m.metrics.get("eval_loss") if m else None
        table.add_row(stored.name, stored.domain or "", stored.base_model or "",
                      f"{eval_loss:.4f}" if isinstance(eval_loss, float) else "",
                      m.created.strftime("%Y-%m-%d %H:%M") if m else "", stored.problem or "")
    console.print(table)


@adapters_app.command("show")
def show_cmd(name: str, root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP)) -> None:
    """Print an adapter's manifest."""
    with handle_errors():
        console.print_json(read_manifest(adapter_path(root, name)).model_dump_json())


@adapters_app.command("delete")
def delete_cmd(name: str, root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Remove an adapter from the store."""
    with handle_errors():
        path = adapter_path(root, name)
        if not yes and not typer.confirm(f"Delete adapter {name!r} at {path}?"):
            raise typer.Exit(1)
        delete_adapter(root, name)
    console.print(f"Deleted {name!r}.")


def merge_cmd(
    adapters: list[str] = typer.Argument(..., help="Adapter names in the store (or adapter folders)."),
    output: Path = typer.Option(..., "--output", help="New adapter folder, or model folder with --into-base."),
    into_base: bool = typer.Option(False, "--into-base", help="Fold one adapter into the base: a full model."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base the adapters were trained on."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Comma-separated, one per adapter (default 1/n)."),
    method: str = typer.Option("cat", "--method", help="cat, svd, linear, ties, dare_ties or dare_linear."),
    density: float = typer.Option(0.5, "--density", help="Kept fraction for ties/dare."),
    root: Optional[Path] = typer.Option(None, "--root", help=_ROOT_HELP),
) -> None:
    """Combine domain adapters into one, or fold an adapter into the base model for deployment."""
    with handle_errors():
        paths = {Path(a).name: Path(a) if Path(a).is_dir() else adapter_path(root, a) for a in adapters}
        for path in paths.values():  # a cut-off copy fails here, named, rather than inside safetensors
            check_weights(path)
        if into_base and len(paths) != 1:
            raise AxError("--into-base folds exactly one adapter; merge several into one adapter first.")
        try:
            parsed = [float(w) for w in weights.split(",")] if weights else None
        except ValueError:
            raise AxError(f"--weights must be comma-separated numbers, got {weights!r}") from None
        base = load_model(base_model)
        if into_base:
            merge_into_base(base, next(iter(paths.values())), output)
            console.print(f"Saved merged model to {output}")
        else:
            manifest = merge_adapters(base, paths, output, weights=parsed, combination_type=method, density=density)
            console.print(f"Saved adapter {manifest.name!r} ({method} of {', '.join(paths)}) to {output}")


SweepKind = Enum("SweepKind", {kind.replace("-", "_"): kind for kind in KINDS}, type=str)


def ablate_cmd(
    kind: SweepKind = typer.Argument(..., help="What to vary across adapters."),
    domain: str = typer.Option(..., "--domain", help="Domain: trained on its train split, scored on its dev items."),
    seeds: Seeds = seeds_option("0,1,2", help="Comma-separated seeds; each setting trains once per seed."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps per adapter (default: the config's)."),
    train: Optional[int] = typer.Option(None, "--train", help="Train on the first N training examples (default: all)."),
    eval_items: Optional[int] = typer.Option(None, "--eval-items", help="Score on the first N dev items (default: all)."),
    values: Optional[str] = typer.Option(None, "--values", help="Comma-separated settings instead of the defaults: "
                                         "weight decays, ranks, or target sets (attention, mlp, all, q_proj+v_proj)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default: ax_ablations/<domain>-<kind>); "
                                       "rerun with the same folder to resume."),
    config: Optional[Path] = typer.Option(None, "--config", help="lora_config.yaml (default: the one shipped with ax)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="'smollm2' (default), an HF dir, a .gguf or a hub id."),
    threads: int = typer.Option(8, "--threads", help="DSPy threads answering the dev items (the client batches them)."),
) -> None:
    """Train one adapter per (setting, seed), score each on the domain's dev items, report accuracy with 95% CIs."""
    words = ["ax", "ablate", kind.value, "--domain", domain, "--seeds", ",".join(map(str, seeds))]
    for flag, value in (("--steps", steps), ("--train", train), ("--eval-items", eval_items), ("--values", values),
                        ("--out", out), ("--config", config), ("--base-model", base_model)):
        words += [flag, str(value)] if value is not None else []
    with handle_errors():
        from ax.experiments.domain_ablation import (  # torch and transformers, loaded only when the command runs
            JSON_FILE, MARKDOWN_FILE, AblationSetup, DomainAblation, check_target_modules, run_domain_ablation,
        )

        for flag, value in (("--train", train), ("--steps", steps), ("--threads", threads)):
            if value is not None and value < 1:
                raise AxError(f"{flag} {value}: must be at least 1")
        base_config = load_config(config, domain).with_overrides(max_steps=steps)
        settings = sweep_settings(kind.value, values, base_config)
        for setting in settings:  # a bad value fails now, not after the model has loaded
            base_config.with_overrides(**setting.overrides)
        task = get_domain(domain)
        items = domain_items(task, "dev", eval_items)
        if eval_items is not None and eval_items > len(items):
            raise AxError(f"--eval-items {eval_items}: domain {domain!r} has only {len(items)} dev items")
        target = out or Path("ax_ablations") / f"{domain}-{kind.value}"
        console.print(f"Loading base model {base_model or 'smollm2'} ...")
        lm = ax.LM(base_model, cache=False)
        check_target_modules(lm.client.torch_model, settings)
        pairs = domain_pairs(lm.client.tokenizer, task)[0]
        if train is not None and train > len(pairs):
            raise AxError(f"--train {train}: domain {domain!r} has only {len(pairs)} training examples")
        pairs = pairs[:train]
        setup = AblationSetup(kind=kind.value, domain=domain, base_model=lm.client.model_name,
                              base_fingerprint=lm.client.base_fingerprint, train_examples=len(pairs),
                              train_data_hash=data_hash(pairs), eval_items=[str(item.id) for item in items],
                              config=base_config.model_dump(mode="json", exclude={"seed"}))
        console.print(f"Sweeping {kind.value} on {domain!r}: {len(settings)} settings x {len(seeds)} seeds, "
                      f"{len(pairs)} training examples, {len(items)} dev items; results in {target}")
        report = run_domain_ablation(DomainAblation(target, task, lm, pairs, items, num_threads=threads), setup,
                                     settings, seeds, base_config, shlex.join(words))
    console.print(report.table(), highlight=False)
    console.print(f"Accuracy on {len(items)} dev items, mean over seeds with 95% t-intervals; "
                  f"written to {target / JSON_FILE} and {target / MARKDOWN_FILE}")
