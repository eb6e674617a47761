"""`--html FILE` for the CLI: the figure the dashboard draws for a command's result, written as
a standalone HTML page. The figures live with the dashboard (`app/figures/`), which the core
does not import: each is found through the `workbench.figures` entry points (name -> a function
of the result that returns a plotly figure), declared in pyproject.toml."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.files import check_output_file, write_output_file

GROUP = "workbench.figures"


def figure_of(kind: str, result: object):
    """The dashboard's figure for `result`, drawn by the figure registered as `kind`."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in found:
        raise WorkbenchError(
            f"no figure {kind!r} is installed (entry points {GROUP}: "
            f"{', '.join(sorted(found)) or 'none'}); reinstall with bash scripts/setup.sh"
        )
    return found[kind].load()(result)


def write_figure(kind: str, result: object, path: Path) -> None:
    """Write the figure of `result` to `path` as one HTML file (plotly.js inside: it opens
    offline), atomically."""
    check_output_file(path)
    html = figure_of(kind, result).to_html(include_plotlyjs=True, full_html=True)
    write_output_file(path, html)
