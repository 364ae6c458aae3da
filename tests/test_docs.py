"""The committed docs/configuration.md and docs/cli.md are exactly what docs/generate.py writes from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GENERATOR = Path(__file__).resolve().parents[1] / "docs" / "generate.py"


def test_docs_match_the_code():
    # A subprocess: typer fixes its help width when first imported, which other tests may already have done.
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
