"""Where domains are found by name: registered ones, the built-ins, then saved imports.

The built-ins are twelve one-call domains and three agent-shaped ones (several predictors,
retrieval, tools).

Built-ins are imported on first use, so `import ax.programs` stays cheap and a broken
generator in one domain cannot stop the others from loading.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ax.errors import AxError
from ax.programs.domain import AGENT_DOMAINS, BUILTIN_DOMAINS, Domain
from ax.programs.imported import DEFAULT_DOMAINS_DIR, SPEC_FILE, load_domain, saved_domain_names

_registered: dict[str, Domain] = {}


def register_domain(domain: Domain, *, replace: bool = False) -> Domain:
    """Make `domain` available to `get_domain`; a taken name needs `replace=True`."""
    if not isinstance(domain, Domain):
        raise AxError(f"register_domain takes a Domain, not {type(domain).__name__}")
    if not replace and (domain.name in _registered or domain.name in (*BUILTIN_DOMAINS, *AGENT_DOMAINS)):
        raise AxError(f"domain {domain.name!r} is already registered; pass replace=True to override it")
    _registered[domain.name] = domain
    return domain


def get_domain(name: str, *, root: str | Path | None = None) -> Domain:
    """The domain called `name`; saved imports are looked up under `root` (default ./ax_domains)."""
    if name in _registered:
        return _registered[name]
    if name in (*BUILTIN_DOMAINS, *AGENT_DOMAINS):
        _registered[name] = importlib.import_module(f"ax.programs.{name}").DOMAIN
        return _registered[name]
    saved = Path(root or DEFAULT_DOMAINS_DIR) / name
    if (saved / SPEC_FILE).is_file():
        return load_domain(saved)
    raise AxError(f"unknown domain {name!r}; known domains: {', '.join(list_domains(root=root))}")


def list_domains(*, root: str | Path | None = None) -> list[str]:
    """Built-ins in their canonical order (agent-shaped ones last), then registered and saved domains alphabetically."""
    others = sorted({*_registered, *saved_domain_names(root)} - {*BUILTIN_DOMAINS, *AGENT_DOMAINS})
    return [*BUILTIN_DOMAINS, *AGENT_DOMAINS, *others]
