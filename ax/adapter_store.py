"""Adapters on disk: PEFT's own format plus `ax_manifest.json`, written so a crash never leaves half an adapter.

An adapter directory holds `adapter_config.json` and `adapter_model.safetensors` (plain
`PeftModel.from_pretrained` loads it, and so do vLLM and other servers) and a manifest saying
which base model it belongs to, what it was trained on and how. Saving writes everything into a
hidden staging directory beside the target and renames it into place only when complete; hidden
directories are never listed or loaded, so readers see the old adapter or the new one, nothing between.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ax.errors import AxError
from ax.model import _file_sha256, atomic_write_text, cache_dir
from ax.names import check_name
from ax.versions import package_versions

log = logging.getLogger(__name__)
MANIFEST_FILE = "ax_manifest.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


class MergeSource(BaseModel):
    """One adapter that went into a merged adapter."""

    name: str
    fingerprint: str
    weight: float


class AdapterManifest(BaseModel):
    """What an adapter is and where it came from; the client checks `base_model_fingerprint` before loading.

    `config` is kept as a plain mapping rather than a LoraTrainingConfig so that adapters saved by
    an older ax stay readable after the settings model gains or renames a key.
    """

    model_config = ConfigDict(extra="ignore")

    format_version: int = 1
    name: str
    domain: str
    base_model_name: str
    base_model_fingerprint: str
    adapter_fingerprint: str
    created: datetime
    training_data_hash: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    merged_from: list[MergeSource] = Field(default_factory=list)
    combination_type: str | None = None
    package_versions: dict[str, str] = Field(default_factory=dict)


def default_store_root() -> Path:
    """Where adapters live unless a path is given: `<ax cache>/adapters`."""
    return cache_dir() / "adapters"


def adapter_fingerprint(path: str | Path) -> str:
    """sha256 of the adapter's weights file: two adapters with the same weights share it."""
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise AxError(f"Adapter weights not found: {weights}")
    return _file_sha256(weights)


def read_manifest(path: str | Path) -> AdapterManifest:
    """The manifest of the adapter at `path`; missing or unreadable is an AxError naming the file."""
    file = Path(path) / MANIFEST_FILE
    try:
        return AdapterManifest.model_validate_json(file.read_bytes())
    except FileNotFoundError:
        raise AxError(f"Adapter manifest not found: {file} (not an ax adapter, or an incomplete copy).") from None
    except OSError as exc:
        raise AxError(f"Cannot read adapter manifest {file}: {exc.strerror}") from None
    except ValidationError as exc:
        raise AxError(f"Adapter manifest {file} is corrupt: {exc.errors()[0]['msg']} "
                      f"at {'.'.join(map(str, exc.errors()[0]['loc'])) or 'top level'}") from None


def check_base(path: str | Path, base_fingerprint: str, base_name: str) -> AdapterManifest:
    """Refuse an adapter trained on another base model: its weights would be applied to the wrong matrices."""
    manifest = read_manifest(path)
    if manifest.base_model_fingerprint != base_fingerprint:
        raise AxError(
            f"Adapter {path} was trained on base model {manifest.base_model_name!r} (fingerprint "
            f"{manifest.base_model_fingerprint}), but the loaded base model is {base_name!r} (fingerprint "
            f"{base_fingerprint}). Load it on {manifest.base_model_name!r} or retrain it on {base_name!r}."
        )
    return manifest


def check_weights(path: str | Path) -> Path:
    """The adapter's weights file, refused when missing, empty, truncated or not safetensors.

    Only the header is read; it records where every tensor ends, so a cut-off copy shows here.
    """
    from safetensors import SafetensorError, safe_open

    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise AxError(f"Adapter weights not found: {weights}")
    try:
        with safe_open(str(weights), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise AxError(f"Adapter weights {weights} cannot be read ({exc}): the file is truncated or not "
                      "safetensors; copy the adapter again or retrain it.") from None
    return weights


def read_peft_config(path: str | Path) -> dict[str, Any]:
    """The adapter's `adapter_config.json` (PEFT's settings), refused when absent or not a JSON object."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise AxError(f"Adapter directory {Path(path)} has no {CONFIG_FILE} (not a PEFT adapter).")
    try:
        config = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise AxError(f"Adapter config {file} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise AxError(f"Adapter config {file} is not a JSON object")
    return config


def check_unverified(path: str | Path, peft_config: dict[str, Any], base_name: str, base_directory: str | Path, *,
                     allow_unverified: bool = False) -> str:
    """Refuse an adapter without an ax manifest unless `allow_unverified`; returns "unverified" when allowed.

    Without the manifest's weight fingerprint nothing ties the adapter to these base weights: the
    base PEFT recorded in `adapter_config.json` is a name, which a fine-tuned or requantized copy
    shares. So loading one is an explicit choice, which the caller records (an evaluation keeps it
    in its configuration, `unverified_adapter`); the error says what the config names.
    """
    recorded = peft_config.get("base_model_name_or_path")
    names_it = bool(recorded) and (recorded in (base_name, str(base_directory))
                                   or Path(recorded).expanduser().resolve() == Path(base_directory).resolve())
    claim = f"its {CONFIG_FILE} names base model {recorded!r}" + (" (the loaded model's name)" if names_it else
                                                                   f", not the loaded {base_name!r}")
    if not allow_unverified:
        raise AxError(f"Adapter {path} has no {MANIFEST_FILE}, so nothing ties it to the loaded base weights "
                      f"({claim}); load it with allow_unverified=True (ax.LM(allow_unverified_adapters=True), or "
                      "\"unverified_adapter\": true in an evaluation's configuration), which runs record.")
    log.warning("Loading adapter %s without %s on %s: its base model is unverified (%s).", path, MANIFEST_FILE,
                base_name, claim)
    return "unverified"


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a hidden staging directory beside `target`; when the block ends without error it becomes `target`.

    A directory already at `target` is replaced only then. On error the staging directory is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _restore_interrupted(target.parent)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        yield staging
        _flush_to_disk(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_adapter(model: Any, target: str | Path, *, domain: str, base_name: str, base_fingerprint: str,
                 adapter_name: str = "default", **manifest_fields: Any) -> AdapterManifest:
    """Save `adapter_name` of a PeftModel to `target` atomically, with its manifest; returns the manifest.

    An adapter already at `target` is replaced only after the new one is complete on disk.
    """
    target = Path(target)
    check_name("adapter", target.name)
    with atomic_directory(target) as staging:
        model.save_pretrained(str(staging), selected_adapters=[adapter_name])
        if adapter_name != "default":  # PEFT nests other adapters in a subdirectory named after them
            nested = staging / adapter_name
            for item in nested.iterdir():
                os.replace(item, staging / item.name)
            nested.rmdir()
        manifest = AdapterManifest(
            name=target.name, domain=domain, base_model_name=base_name, base_model_fingerprint=base_fingerprint,
            adapter_fingerprint=adapter_fingerprint(staging), created=datetime.now(timezone.utc),
            package_versions=package_versions(), **manifest_fields,
        )
        atomic_write_text(staging / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    return manifest


def _flush_to_disk(directory: Path) -> None:
    """fsync every file and the directory, so that after a power cut the renamed directory is not empty."""
    for path in [*directory.rglob("*"), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the complete staging directory to `target`, moving an old one aside first.

    Between the two renames `target` is briefly absent, never partial; `_restore_interrupted` puts
    the old directory back if a crash falls exactly there.
    """
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)


def _restore_interrupted(root: Path) -> None:
    """Put back an old directory whose replacement was interrupted between its two renames."""
    for retired in root.glob(".*.old-*"):
        name = retired.name[1:].rsplit(".old-", 1)[0]
        if not (root / name).exists():
            os.replace(retired, root / name)
        else:
            shutil.rmtree(retired, ignore_errors=True)  # the swap finished; only the cleanup was cut off


@dataclass
class StoredAdapter:
    """An adapter directory in a store, with its manifest or the reason it could not be read."""

    name: str
    path: Path
    manifest: AdapterManifest | None
    problem: str | None = None

    @property
    def domain(self) -> str | None:
        return self.manifest.domain if self.manifest else None

    @property
    def base_model(self) -> str | None:
        return self.manifest.base_model_name if self.manifest else None


def list_adapters(root: str | Path | None = None) -> list[StoredAdapter]:
    """Every adapter in the store (hidden staging directories excluded), sorted by name."""
    root = Path(root) if root is not None else default_store_root()
    if not root.is_dir():
        return []
    _restore_interrupted(root)
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / CONFIG_FILE).is_file():
            continue
        try:
            manifest = read_manifest(path)
            check_weights(path)
            found.append(StoredAdapter(path.name, path, manifest))
        except AxError as exc:
            found.append(StoredAdapter(path.name, path, None, str(exc)))
    return found


def adapter_path(root: str | Path | None, name: str) -> Path:
    """The directory of adapter `name` in the store; an AxError listing the store's adapters if absent."""
    root = Path(root) if root is not None else default_store_root()
    path = root / check_name("adapter", name)
    if not (path / CONFIG_FILE).is_file():
        names = [a.name for a in list_adapters(root)]
        raise AxError(f"No adapter named {name!r} in {root}; adapters there: {names or 'none'}")
    return path


def delete_adapter(root: str | Path | None, name: str) -> None:
    """Remove an adapter: renamed out of sight first, so an interrupted delete never leaves a partial one."""
    path = adapter_path(root, name)
    doomed = path.with_name(f".{name}.deleting-{uuid.uuid4().hex[:8]}")
    os.replace(path, doomed)
    shutil.rmtree(doomed)
