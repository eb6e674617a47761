"""Links from any page to the attention page: open a model, or one of its heads, there.

Opening sets the page and its tab, and the model view's click (`overview.clickData`, read
as `H{head}` by `L{layer}`). When the model changes too, the attention view clears the click
as the new model arrives (another model's heads mean nothing there), so the click waits in
`links-pending` until the new model's head list (`overlay-heads.options`) is set, and is
applied then."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc

PENDING = "links-pending"


def store() -> dcc.Store:
    """The click that waits for a model change (put once in the page's layout)."""
    return dcc.Store(id=PENDING)


def outputs() -> list[Output]:
    """The outputs of a callback that opens the attention page (`open_attention` fills them)."""
    return [
        Output("page", "value", allow_duplicate=True),
        Output("tabs", "value", allow_duplicate=True),
        Output("model", "options", allow_duplicate=True),
        Output("model", "value", allow_duplicate=True),
        Output("overview", "clickData", allow_duplicate=True),
        Output(PENDING, "data", allow_duplicate=True),
    ]


def open_attention(
    names: list[str], shown: object, model: str, head: tuple[int, int] | None = None
) -> tuple:
    """The values of `outputs()` that show `model` (among the offered `names`; `shown` is the
    model the page shows now) on the attention page, with head (layer, head) clicked."""
    click = None if head is None else {"points": [{"x": f"H{head[1]}", "y": f"L{head[0]}"}]}
    if shown == model:
        return "attention", "attention", names, dash.no_update, click, None
    pending = None if click is None else {"model": model, "click": click}
    return "attention", "attention", names, model, dash.no_update, pending


def register(app: dash.Dash) -> None:
    @app.callback(
        Output("overview", "clickData", allow_duplicate=True),
        Output(PENDING, "data"),
        Input("overlay-heads", "options"),
        State(PENDING, "data"),
        State("model", "value"),
        prevent_initial_call=True,
    )
    def on_new_model(_: object, pending: object, model: object):
        if not isinstance(pending, dict) or pending.get("model") != model:
            raise dash.exceptions.PreventUpdate
        return pending.get("click"), None
