"""Write docs/configuration.md and docs/cli.md from the code; `--check` only says whether they are current.

    .venv/bin/python docs/generate.py           # rewrite both files
    .venv/bin/python docs/generate.py --check   # exit 1, naming the stale files (tests/test_docs.py)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# typer and rich read these once, when first imported: a fixed width and no colour make the
# help text the same on every terminal and in CI (GITHUB_ACTIONS would otherwise force colour).
os.environ.update(TERMINAL_WIDTH="100", COLUMNS="100", NO_COLOR="1", _TYPER_FORCE_DISABLE_TERMINAL="1")

import cli_doc  # noqa: E402  (docs/ is on sys.path when this file runs as a script)
import config_doc  # noqa: E402

DOCS = Path(__file__).resolve().parent
RENDERERS = {"configuration.md": config_doc.render, "cli.md": cli_doc.render}


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for name, render in RENDERERS.items():
        text, path = render(), DOCS / name
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"docs out of date: {', '.join(stale)}; run `.venv/bin/python docs/generate.py`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
