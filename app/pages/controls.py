"""Building blocks the pages share: a labelled field, radio buttons with every option in
sight, a number box, the placeholder figure a graph shows before its first result; a
page's background run: its controls, its progress line and its cancel button; and the
check every callback of a page makes first (`only_shown`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from app.background import Runs, RunState
from app.respond import answer
from workbench.errors import InputError


def only_shown(page: object, name: str, trigger: str | None = None) -> None:
    """Stop the callback (no update) unless the page shown (`page`, the browser's value) is
    `name`, and, given a `trigger`, that input fired it: a page never computes for a browser
    that does not show it."""
    if page != name or (trigger is not None and dash.ctx.triggered_id != trigger):
        raise dash.exceptions.PreventUpdate


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
    state: RunState, unit: str, finished: Callable[[Any], str], staged: bool = False
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


def run_controls(page: str, label: str, poll_ms: int) -> list:
    """A page's controls of its background run: the button that starts it (`label`,
    `{page}-start`), the cancel button (`{page}-cancel`), the progress line
    (`{page}-progress`), the error line (`{page}-error`), the run's id (`{page}-run`) and
    the poll (`{page}-poll`, every `poll_ms` while the run runs)."""
    return [
        html.Div(
            style={"marginTop": "6px"},
            children=[
                html.Button(label, id=f"{page}-start", n_clicks=0),
                html.Button("cancel", id=f"{page}-cancel", n_clicks=0, style={"marginLeft": "8px"}),
                html.Span(id=f"{page}-progress", style={"marginLeft": "12px"}),
            ],
        ),
        html.Div(id=f"{page}-error", style={"color": "crimson", "marginTop": "6px"}),
        dcc.Store(id=f"{page}-run"),
        dcc.Interval(id=f"{page}-poll", interval=poll_ms, disabled=True),
    ]


def cancel_button(
    app: dash.Dash, page: str, runs: Runs, what: str, progress: Callable[[RunState], object]
) -> None:
    """The callback of the page's cancel button (`{page}-cancel`): it cancels the run whose
    id the page keeps (`{page}-run`), and the progress line (`{page}-progress`, drawn by
    `progress`) says so; a message (`{page}-error`) if no `what` has run on this page."""

    @app.callback(
        Output(f"{page}-error", "children", allow_duplicate=True),
        Output(f"{page}-progress", "children", allow_duplicate=True),
        Input(f"{page}-cancel", "n_clicks"),
        Input("page", "value"),
        State(f"{page}-run", "data"),
        prevent_initial_call=True,
    )
    def on_cancel(_clicks: object, shown: object, run_id: object):
        only_shown(shown, page, f"{page}-cancel")

        def compute():
            if run_id is None:
                raise InputError(f"nothing to cancel: no {what} has run on this page")
            state = runs.cancel(run_id)
            return "", "cancelling..." if state.running else progress(state)

        return answer(compute, lambda message: message)
