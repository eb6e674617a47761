"""Building blocks the pages share: a labelled field, radio buttons with every option in
sight, a number box, the placeholder figure a graph shows before its first result, and the
progress line of a background run."""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go
from dash import dcc, html

from app.background import RunState


def field(label: str, component) -> html.Span:
    """`component` with its label before it, inline."""
    return html.Span(
        [html.Label(label + " ", htmlFor=component.id), component],
        style={"marginRight": "14px", "display": "inline-block"},
    )


def radio(id_: str, options, value: str) -> dcc.RadioItems:
    """Radio buttons: every option in sight. `options`: values, or labels by value."""
    if isinstance(options, dict):
        options = [{"label": label, "value": key} for key, label in options.items()]
    return dcc.RadioItems(
        options, value, id=id_, inline=True, style={"display": "inline-block"},
        inputStyle={"marginLeft": "6px", "marginRight": "2px"},
    )  # fmt: skip


def number_box(id_: str, value: float, low: float, high: float, step: float | str = 1):
    """A number box from `low` to `high` (the server checks what it sends all the same)."""
    return dcc.Input(
        id=id_, type="number", value=value, min=low, max=high, step=step, style={"width": "90px"}
    )


def placeholder(text: str, height: int = 160, color: str | None = None) -> go.Figure:
    """What a graph shows before its first result: `text`, and no axes."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, font={"color": color})
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=height, template="none")
    return fig


def progress_line(
    state: RunState, unit: str, finished: Callable[[object], str], staged: bool = False
) -> list | str:
    """A page's line for its background run (`app.background`): while it runs, a bar and how
    many `unit` of how many it has done (after its stage, if `staged`), or its stage until
    it knows; then how it ended: done (what `finished(result)` says was done), cancelled
    after how many, or failed (the page's error line says why)."""
    seconds = f"{state.seconds:.1f} s"
    if state.running and state.total:
        stage = f"{state.stage}: " if staged else ""
        return [
            html.Progress(value=str(state.done), max=str(state.total)),
            f" {stage}{state.done} of {state.total} {unit} ({seconds})",
        ]
    if state.running:
        return [html.Progress(), f" {state.stage} ({seconds})"]
    if state.status == "cancelled":
        return f"cancelled after {state.done} of {state.total or '?'} {unit}"
    if state.status == "done":
        return f"done: {finished(state.result)} in {seconds}"
    return state.status  # failed (or timed out)
