"""The notebooks run top to bottom (their code cells, in one namespace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path) -> None:
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    namespace: dict[str, object] = {}
    for i, cell in enumerate(code):
        exec(compile("".join(cell["source"]), f"{path.name} cell {i}", "exec"), namespace)
    # exec adds __builtins__ alone; the cells must have defined what the notebook shows
    assert set(namespace) - {"__builtins__"}, f"{path.name} defined nothing"


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS
