"""The attention page: the model, head, neuron and token views of the page's input, what the
model predicts, and what it reads (an image, a series, a compiled program's residual), each in
a tab of its own (`app.views`)."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from app.context import AppContext
from app.views import attention, inputs, neuron, predictions

NAME = "attention"
TITLE = "attention"
# the page's sections, one tab each
TABS = {
    "attention": "attention",
    "predictions": "what the model predicts",
    "input": "image / series / RASP program",
}


def layout() -> html.Div:
    return html.Div(
        [
            dcc.Tabs(
                id="tabs",
                value="attention",
                children=[dcc.Tab(label=label, value=value) for value, label in TABS.items()],
            ),
            html.Div(id="section-attention", children=[attention.layout(), neuron.layout()]),
            html.Div(id="section-predictions", children=predictions.layout()),
            html.Div(id="section-input", children=inputs.layout()),
        ]
    )


def register(app: dash.Dash, context: AppContext) -> None:
    @app.callback(*(Output(f"section-{tab}", "style") for tab in TABS), Input("tabs", "value"))
    def on_tab(shown: object):  # every section stays in the page; the others are hidden
        return [{"display": "block" if tab == shown else "none"} for tab in TABS]

    for view in (attention, neuron, predictions, inputs):
        view.register(app, context.registry)
