"""The manifest of a report: which model, adapters, data, seeds and package versions produced its numbers.

Everything here is read back from the response store (each respondent record keeps the model
and adapter fingerprints, its decoding settings, package versions and the commands that
evaluated it) and from the adapters' own ``ax_manifest.json``, so a report can be audited
without the machine that produced it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ax.adapter_store import read_manifest
from ax.errors import AxError
from ax.evals.matrix_store import ResponseStore
from ax.versions import RECORDED_PACKAGES, package_versions

# Manifest.report_versions: ax's recorded packages plus the ones the statistics and plots run on.
REPORT_PACKAGES = (*RECORDED_PACKAGES, "numpy", "scipy", "statsmodels", "matplotlib")


class ModelEntry(BaseModel):
    name: str
    fingerprint: str
    lm_settings: dict[str, Any]


class AdapterEntry(BaseModel):
    path: str
    fingerprint: str
    used_by: list[str]
    base_model: str | None
    training_data_hash: str | None


class DomainEntry(BaseModel):
    domain: str
    items: int
    data_digest: str
    respondents: int
    seeds: list[int]
    programs: list[str]
    playbooks: list[str]


class Manifest(BaseModel):
    created: datetime
    run_dir: str
    models: list[ModelEntry]
    adapters: list[AdapterEntry]
    domains: list[DomainEntry]
    evaluation_versions: list[dict[str, str]]
    report_versions: dict[str, str]
    evaluation_commands: list[str]
    report_command: str


def _adapter_entry(path: Path, fingerprint: str, users: list[str]) -> AdapterEntry:
    try:
        manifest = read_manifest(path)
        base, data = f"{manifest.base_model_name} ({manifest.base_model_fingerprint})", manifest.training_data_hash
    except AxError:  # an adapter trained elsewhere, or moved since: its weights fingerprint still identifies it
        base, data = None, None
    return AdapterEntry(path=str(path), fingerprint=fingerprint, used_by=users, base_model=base,
                        training_data_hash=data)


def build_manifest(store: ResponseStore, domains: list[str], report_command: str) -> Manifest:
    models: dict[tuple, ModelEntry] = {}
    adapters: dict[tuple[str, str], list[str]] = {}
    versions: list[dict[str, str]] = []
    commands: list[str] = []
    entries = []
    for domain in domains:
        records = store.respondents(domain)
        for record in records:
            configuration = record.configuration
            key = (record.model, record.model_fingerprint, repr(sorted(record.lm_settings.items())))
            models.setdefault(key, ModelEntry(name=record.model, fingerprint=record.model_fingerprint,
                                              lm_settings=record.lm_settings))
            if configuration.adapter is not None and record.adapter_fingerprint:
                adapters.setdefault((str(configuration.adapter), record.adapter_fingerprint), []).append(
                    f"{domain}/{configuration.name}")
            for predictor, fingerprint in record.predictor_adapter_fingerprints.items():
                adapters.setdefault((str(configuration.predictor_adapters[predictor]), fingerprint), []).append(
                    f"{domain}/{configuration.name} ({predictor})")
            if record.versions not in versions:
                versions.append(record.versions)
            commands += [c for c in record.commands if c not in commands]
        configurations = [r.configuration for r in records]
        entries.append(DomainEntry(
            domain=domain, items=len(store.items(domain)), data_digest=store.data_digest(domain),
            respondents=len(records), seeds=sorted({c.seed for c in configurations}),
            programs=sorted({str(c.program) for c in configurations if c.program is not None}),
            playbooks=sorted({str(c.playbook) for c in configurations if c.playbook is not None})))
    return Manifest(
        created=datetime.now(timezone.utc), run_dir=str(store.run_dir), models=list(models.values()),
        adapters=[_adapter_entry(Path(path), fp, users) for (path, fp), users in adapters.items()],
        domains=entries, evaluation_versions=versions, report_versions=package_versions(REPORT_PACKAGES),
        evaluation_commands=commands, report_command=report_command)
