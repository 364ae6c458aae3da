"""Installed versions of the packages a stored record names, so a result can be traced to the software behind it."""

from __future__ import annotations

from importlib import metadata

# What every adapter manifest records; run manifests and reports add the packages their own step runs on.
RECORDED_PACKAGES = ("ax", "torch", "transformers", "peft", "accelerate", "dspy")


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    """{package: version} in the order of `packages`; one not installed is left out."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
