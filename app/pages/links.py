"""Links between pages: any page opens a head in the attention page's views.

A callback that opens a head sets the page, the attention page's tab and the model (the
outputs `OPEN_HEAD`, values from `open_head`), and leaves the head in the `link` store. The
head is clicked in the model view by `register`'s callback only once the attention view has
taken the model: a new model clears the model view's click (a head of another model means
nothing), and Dash runs that callback first, since its output `overlay-heads.options` is an
input here."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc
from dash.exceptions import PreventUpdate

LINK = "link"
OPEN_HEAD = (
    Output("page", "value", allow_duplicate=True),
    Output("tabs", "value", allow_duplicate=True),
    Output("model", "value", allow_duplicate=True),
    Output(LINK, "data", allow_duplicate=True),
)


def layout() -> dcc.Store:
    return dcc.Store(id=LINK)


def open_head(model: str, layer: int, head: int) -> tuple:
    """The values of `OPEN_HEAD` that open `model`'s head (layer, head) in the attention view."""
    return "attention", "attention", model, {"model": model, "layer": layer, "head": head}


def register(app: dash.Dash) -> None:
    @app.callback(
        Output("overview", "clickData", allow_duplicate=True),
        Output(LINK, "data"),
        Input(LINK, "data"),
        Input("overlay-heads", "options"),
        State("model", "value"),
        prevent_initial_call=True,
    )
    def on_link(link: object, _: object, model: object):
        if not isinstance(link, dict) or link.get("model") != model:
            raise PreventUpdate
        layer, head = link.get("layer"), link.get("head")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (layer, head)):
            raise PreventUpdate
        return {"points": [{"x": f"H{head}", "y": f"L{layer}"}]}, None
