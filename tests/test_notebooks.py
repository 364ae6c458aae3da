"""The walkthrough notebooks run top to bottom on the embedded model, so they cannot rot.

They run in order in one temporary folder, as a reader would run them in one place: notebook 3's
`ax.compare` then reuses the stages notebook 2 optimized under `runs/walkthrough` and only
evaluates. Run alone (`-k 03`), notebook 3 optimizes them itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_collected_and_stored_without_outputs():
    import nbformat

    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        assert not [c for c in cells if c.cell_type == "code" and (c.outputs or c.execution_count)], path.name


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The folder every notebook runs in (and writes its runs/ into), shared by all of them."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, workdir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # Generate every answer: a cached one would keep passing after the code behind it broke.
    monkeypatch.setenv("AX_NO_CACHE", "1")
    notebook = nbformat.read(path, as_version=4)
    # Kernel "python3" with the spec's bare `python` is started as this interpreter (jupyter_client
    # substitutes sys.executable), i.e. the venv's; the kernel inherits the test's environment.
    # A cell's limit is a hang detector, not a speed test: the longest cell takes about a minute
    # on 2 quiet cores and over 5 minutes when another job shares them.
    client = NotebookClient(notebook, kernel_name="python3", timeout=900,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # a failing cell raises CellExecutionError with its traceback
