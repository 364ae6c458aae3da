"""Merging: fold an adapter into the base for deployment, or combine domain adapters into one.

`add_weighted_adapter` gives the combined adapter a config copied from the first source with
`lora_alpha = r`, meaning scaling 1, but keeps that source's `use_rslora`, so an rsLoRA source
makes the result sqrt(r) times too strong (peft#3761). rsLoRA sources are therefore loaded as
the equivalent plain LoRA (alpha' = alpha * sqrt(r): alpha'/r == alpha/sqrt(r), same forward
pass), after which the combined config is right. DoRA (its magnitude vector is not combined)
and LoRA biases are refused rather than merged wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel

from ax.adapter_store import (
    AdapterManifest, MergeSource, atomic_directory, check_base, save_adapter,
)
from ax.errors import AxError
from ax.model import LoadedModel, atomic_write_text
from ax.names import check_name

Combination = Literal["linear", "cat", "svd", "ties", "dare_ties", "dare_linear"]
_EQUAL_RANK = {"linear", "ties", "dare_ties", "dare_linear"}
_DENSITY = {"ties", "dare_ties", "dare_linear"}
MERGED_RECORD = "ax_merged_from.json"


class MergedModelRecord(BaseModel):
    """Written next to a full merged model: which base and adapter it was folded from."""

    base_model_name: str
    base_model_fingerprint: str
    adapter: str
    adapter_fingerprint: str


def merge_into_base(base: LoadedModel, adapter_path: str | Path, output_dir: str | Path) -> Path:
    """Fold the adapter into the base weights and save a full HF model (no PEFT needed to serve it).

    `base.model` is consumed: its layers are changed in place, so load a fresh base afterwards.
    """
    from peft import PeftModel

    adapter_path = Path(adapter_path)
    manifest = check_base(adapter_path, base.fingerprint, base.name)
    merged = PeftModel.from_pretrained(base.model, str(adapter_path)).merge_and_unload()
    record = MergedModelRecord(base_model_name=base.name, base_model_fingerprint=base.fingerprint,
                               adapter=manifest.name, adapter_fingerprint=manifest.adapter_fingerprint)
    with atomic_directory(output_dir) as staging:
        merged.save_pretrained(str(staging))
        base.tokenizer.save_pretrained(str(staging))
        atomic_write_text(staging / MERGED_RECORD, record.model_dump_json(indent=2))
    return Path(output_dir)


def _mergeable_config(name: str, path: Path) -> Any:
    """The adapter's LoraConfig, with rsLoRA rewritten as the equivalent plain scaling; refuses DoRA and biases."""
    from peft import LoraConfig

    config = LoraConfig.from_pretrained(str(path))
    if config.use_dora:
        raise AxError(f"Adapter {name!r} ({path}) uses DoRA; PEFT's add_weighted_adapter drops its magnitude "
                      "vector (peft#3761), so it cannot be merged correctly. Merge it into the base instead.")
    if getattr(config, "lora_bias", False):
        raise AxError(f"Adapter {name!r} ({path}) has LoRA biases, which add_weighted_adapter ignores (peft#3761).")
    if config.use_rslora:
        if config.rank_pattern or config.alpha_pattern:
            raise AxError(f"Adapter {name!r} ({path}) combines rsLoRA with per-module ranks; cannot merge it safely.")
        config.lora_alpha = config.lora_alpha * math.sqrt(config.r)
        config.use_rslora = False
    config.inference_mode = True
    return config


def merge_adapters(base: LoadedModel, sources: Mapping[str, str | Path], target: str | Path, *,
                   weights: Sequence[float] | None = None, combination_type: Combination = "cat",
                   density: float = 0.5, domain: str | None = None, seed: int = 0) -> AdapterManifest:
    """Combine several adapters of one base into a new stored adapter at `target`.

    Weights default to equal shares (1/n). "cat" (default) and "svd" accept different ranks;
    "cat" is exact: the merged update is the weighted sum of the sources' updates. "linear",
    "ties", "dare_ties" and "dare_linear" need equal ranks; the last three keep a `density`
    fraction of each update (DARE drops at random: `seed` fixes the draw).
    `base.model` is consumed (adapters are loaded into it).
    """
    import torch
    from peft import PeftModel

    if not sources:
        raise AxError("Nothing to merge: no adapters given.")
    if combination_type not in get_args(Combination):
        raise AxError(f"Unknown combination_type {combination_type!r}; choose one of {get_args(Combination)}.")
    names = [check_name("adapter", n) for n in sources]
    weights = list(weights) if weights is not None else [1.0 / len(names)] * len(names)
    if len(weights) != len(names):
        raise AxError(f"{len(weights)} weights given for {len(names)} adapters ({names}).")
    paths = {name: Path(sources[name]) for name in names}
    manifests = {name: check_base(path, base.fingerprint, base.name) for name, path in paths.items()}
    configs = {name: _mergeable_config(name, path) for name, path in paths.items()}
    ranks = {name: config.r for name, config in configs.items()}
    if combination_type in _EQUAL_RANK and len(set(ranks.values())) > 1:
        raise AxError(f"combination_type={combination_type!r} needs adapters of equal rank, got {ranks}; "
                      "use 'cat' or 'svd', or retrain with one r.")

    model = None
    for name in names:
        if model is None:
            model = PeftModel.from_pretrained(base.model, str(paths[name]), adapter_name=name, config=configs[name])
        else:
            model.add_adapter(name, configs[name])
            model.load_adapter(str(paths[name]), adapter_name=name)
    merged_name = check_name("adapter", Path(target).name)
    torch.manual_seed(seed)
    model.add_weighted_adapter(names, weights, merged_name, combination_type=combination_type,
                               density=density if combination_type in _DENSITY else None)
    return save_adapter(
        model, target, adapter_name=merged_name, domain=domain or "+".join(names), base_name=base.name,
        base_fingerprint=base.fingerprint, combination_type=combination_type,
        merged_from=[MergeSource(name=n, fingerprint=manifests[n].adapter_fingerprint, weight=w)
                     for n, w in zip(names, weights)],
    )
