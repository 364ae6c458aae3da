"""The one rule for the names that become file and folder names: domains, adapters, configurations, playbooks."""

from __future__ import annotations

import re

from ax.errors import AxError

NAME_PATTERN = r"^[a-z0-9][a-z0-9._+=-]*$"
NAME_RULE = "lowercase letters, digits and . _ + = -, starting with a letter or a digit"


def check_name(kind: str, name: object) -> str:
    """``name`` if it follows the rule, else an AxError naming the kind, the value and the rule."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise AxError(f"{kind} name {name!r} must be {NAME_RULE}")
    return name
