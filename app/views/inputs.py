"""The view of what the model reads, by input kind: a vision model's image under its patch
grid coloured by the clicked head's class-token attention or by the attention rollout through
the clicked layer; a series model's variate x variate mixing for the clicked head; a compiled
RASP program's residual stream decoded to `sop:value` per sublayer, and what each head
computes. The attention views (model, head, token, neuron) work on these models too."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from app.figures.rasp import head_table, residual_table
from app.figures.series import variate_mixing
from app.figures.vision import patch_overlay
from app.inputs import MAX_UPLOAD_BYTES, compact_png, series_note
from app.models import ModelRegistry
from app.respond import answer, error_figure
from app.run import UPLOADED, attention_patterns, prepare
from app.views.attention import clicked_head
from probes.rollout import patch_attention
from rasp.readout import rasp_labels, residual_by_layer
from workbench.options import Patches, Series

OVERLAYS = {"cls": "class-token attention of the clicked head", "rollout": "rollout through the clicked layer"}  # fmt: skip


def input_view(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    click: object,
    overlay: object = "cls",
    upload: object = None,
):
    """The figures of this model's input kind (two; the second may be empty) and a note."""
    ckpt = registry.checkpoint(model_name)
    config = ckpt.model.config
    if isinstance(ckpt.meta.get("rasp"), dict):
        labels = rasp_labels(ckpt)
        prepared = prepare(ckpt, prompt, upload)
        with registry.running(model_name):
            readout = residual_by_layer(ckpt.model, prepared.token_ids(), labels)
        title = f"residual stream of {labels.program}, decoded (what each sublayer wrote)"
        return residual_table(readout, title), head_table(labels), ""
    patterns, prepared = attention_patterns(registry, model_name, prompt, upload)
    layer, head = clicked_head(click, *patterns.shape[:2])
    if isinstance(config.input, Patches):
        if overlay not in OVERLAYS:
            raise dash.exceptions.PreventUpdate
        found = patch_attention(patterns, config.input.side)
        chosen = head if overlay == "cls" else None
        what = (
            f"head L{layer}H{head}, class token"
            if chosen is not None
            else f"rollout through layer {layer}"
        )
        fig = patch_overlay(prepared.inputs, found.grid(layer, chosen), what, signed=found.signed)
        return fig, error_figure("(one figure for images)"), prepared.description
    if isinstance(config.input, Series):
        note = f"{prepared.description}. {series_note(ckpt, len(prepared.labels))}"
        fig = variate_mixing(
            patterns[layer, head],
            prepared.labels,
            f"head L{layer}H{head}: variate x variate",
            note,
            mixing=not config.layer(layer).attention.softmax_scores,
        )
        return fig, error_figure("(one figure for series)"), note
    message = "this model reads text: its views are the attention and predictions tabs"
    return error_figure(message), error_figure(message), message


def layout() -> html.Div:
    return html.Div(
        style={"marginTop": "8px"},
        children=[
            dcc.RadioItems(
                [{"label": v, "value": k} for k, v in OVERLAYS.items()],
                "cls",
                id="overlay",
                inline=True,
            ),
            html.Div(id="input-note", style={"color": "#555", "fontSize": "small"}),
            html.Div(id="input-error", style={"color": "crimson"}),
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[
                    dcc.Loading(dcc.Graph(id="input-view")),
                    dcc.Loading(dcc.Graph(id="input-extra")),
                ],
            ),
        ],
    )


def upload_layout() -> html.Div:
    """The upload of an image for a vision model, kept on the page at the model's size."""
    return html.Div(
        [
            dcc.Upload(
                id="upload",
                children=html.Span(["image for a vision model: ", html.A("upload a PNG")]),
                max_size=MAX_UPLOAD_BYTES,
                accept="image/png",
                style={"display": "inline-block", "marginTop": "4px", "cursor": "pointer"},
            ),
            dcc.Store(id="image"),  # the uploaded image at the model's size (a small PNG)
        ]
    )


def register(app: dash.Dash, registry: ModelRegistry) -> None:
    @app.callback(
        Output("image", "data", allow_duplicate=True),
        Input("model", "value"),
        prevent_initial_call=True,
    )
    def on_model(_: object):  # an upload kept at another model's size: not for this one
        return None

    @app.callback(
        Output("image", "data"),
        Output("prompt", "value", allow_duplicate=True),
        Output("error", "children", allow_duplicate=True),
        Input("upload", "contents"),
        State("model", "value"),
        prevent_initial_call=True,
    )
    def on_upload(contents: object, model_name: object):
        def compute():
            config = registry.checkpoint(model_name).model.config
            return compact_png(contents, config), UPLOADED, ""

        return answer(compute, lambda _: None, lambda _: dash.no_update)

    @app.callback(
        Output("input-view", "figure"),
        Output("input-extra", "figure"),
        Output("input-note", "children"),
        Output("input-error", "children"),
        Input("overview", "clickData"),
        Input("overlay", "value"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("image", "data"),
        Input("tabs", "value"),
    )
    def on_input(click, overlay, _, prompt, model_name, image, tab):
        if tab != "input":  # computed when shown
            raise dash.exceptions.PreventUpdate

        def compute():
            return *input_view(registry, model_name, prompt, click, overlay, image), ""

        return answer(compute, error_figure, error_figure, lambda _: "")
