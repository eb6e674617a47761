"""The neuron view (after BertViz's), linked to the head view: for the model-view head and the
query clicked in the head matrix (default: the last), the query vector, each key vector,
their elementwise product and each term of the score, for every attention kind
(`probes.scores.score_terms`, checked against the model's own scores and pattern)."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from app.figures.neuron import neuron_view
from app.models import ModelRegistry
from app.respond import answer, error_figure
from app.run import prepare
from app.views.attention import clicked_head
from probes.scores import score_terms
from workbench.errors import InputError


def clicked_query(click: object, n: int) -> int:
    """The query of a click on the head matrix (browser data: checked), or the last."""
    if click is None:
        return n - 1
    try:
        point = click["points"][0]  # type: ignore[index]
        if "color" in point:  # overlaid heads: pixels of a window, not positions
            return n - 1
        y = point["y"]
        query = int(str(y).split(":", 1)[0]) if isinstance(y, str) else round(float(y))
    except (TypeError, KeyError, IndexError, ValueError, OverflowError):
        raise InputError(
            "could not read the clicked query; click a cell of the head matrix"
        ) from None
    return query if 0 <= query < n else n - 1  # a click on an earlier, longer prompt


def neuron(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    click: object,
    head_click: object,
    upload: object = None,
):
    ckpt = registry.checkpoint(model_name)
    prepared = prepare(ckpt, prompt, upload)  # no model run: outside the lock
    cfg = ckpt.model.config
    layer, head = clicked_head(click, cfg.n_layers, cfg.n_heads)
    query = clicked_query(head_click, len(prepared.labels))
    with registry.running(model_name):
        terms = score_terms(ckpt.model, prepared.inputs, layer, head, query)
    return neuron_view(terms, prepared.labels)


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                "neuron view: click a cell of the head matrix to choose its query",
                style={"color": "#555", "fontSize": "small", "marginTop": "8px"},
            ),
            html.Div(id="neuron-error", style={"color": "crimson"}),
            dcc.Loading(dcc.Graph(id="neuron")),
        ]
    )


def register(app: dash.Dash, registry: ModelRegistry) -> None:
    @app.callback(
        Output("neuron", "figure"),
        Output("neuron-error", "children"),
        Input("overview", "clickData"),
        Input("head", "clickData"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("image", "data"),
    )
    def on_neuron(click, head_click, _, prompt, model_name, image):
        return answer(
            lambda: (neuron(registry, model_name, prompt, click, head_click, image), ""),
            error_figure,
        )
