"""The notebooks (notebooks/*.ipynb): stored without outputs, and executed top to bottom by a
real Jupyter kernel (nbclient, the .venv's ipykernel) without an error, their figures
rendering without a live widget (a static PNG and HTML beside the plotly JSON). Executing
them is slow (a kernel, the models, the figures' images): CI runs it with `-m slow`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"


def test_the_notebooks_are_there() -> None:
    names = {p.stem for p in NOTEBOOKS}
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_"):
        assert any(n.startswith(prefix) for n in names), f"no notebook {prefix}*"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    assert any(c["cell_type"] == "code" for c in cells), f"{path.name} has no code cell"
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} cell {i} keeps outputs: strip them"
            assert cell["execution_count"] is None, f"{path.name} cell {i} has a count"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel_with_static_figures(path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
        env=env,
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    figures = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY in data:
                figures += 1
                assert "text/html" in data and "image/png" in data, (
                    f"{path.name}: a figure without its HTML and PNG forms ({sorted(data)})"
                )
    assert figures or path.name == "quickstart.ipynb", f"{path.name} shows no figure"
