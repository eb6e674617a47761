"""`--html FILE`: a figure registered as an entry point, written as one standalone page."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import plotly.graph_objects as go
import pytest

import workbench.html
from workbench.errors import InputError, WorkbenchError


def bars(result: list[float]) -> go.Figure:
    return go.Figure(go.Bar(y=result))


def test_a_registered_figure_is_written_as_a_standalone_page(tmp_path, monkeypatch) -> None:
    point = EntryPoint("bars", f"{__name__}:bars", workbench.html.GROUP)
    monkeypatch.setattr(workbench.html, "entry_points", lambda group: [point])
    out = tmp_path / "deep" / "figure.html"
    workbench.html.write_figure("bars", [1.0, 2.5], out)
    page = out.read_text()
    assert page.lower().startswith("<!doctype html>") and "Plotly.newPlot" in page
    assert '"y":[1.0,2.5]' in page  # the result drawn
    with pytest.raises(WorkbenchError, match="no figure 'lines' is installed .*bars"):
        workbench.html.write_figure("lines", [1.0], tmp_path / "x.html")
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        workbench.html.write_figure("bars", [1.0], tmp_path / "dir.html")
