"""What the model predicts, for the page's prompt: the top-k tokens at each position, the
logit lens (layer x position: the top token, coloured by a target's probability) and the
exact direct logit attribution of an answer (or answer minus a wrong token) at one position,
per head, MLP, embedding and bias (`probes.lens`, `probes.logit_attribution`)."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from app.checks import empty, whole
from app.figures.predictions import dla_bars, logit_lens_grid, top_k_table
from app.models import ModelRegistry
from app.prompts import token_id, token_names
from app.respond import answer, error_figure
from app.run import prepare
from probes.lens import logit_lens, top_predictions
from probes.logit_attribution import direct_logit_attribution
from workbench.errors import InputError
from workbench.options import Tokens

MAX_K = 20


def predictions(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    k: object = 5,
    answer_text: object = None,
    wrong_text: object = None,
    position: object = None,
):
    """The three figures (top-k, logit lens, DLA) and a line saying what was attributed. The
    answer defaults to the model's top prediction at `position` (default: the last)."""
    k = whole(k, 1, MAX_K, "top-k")
    ckpt = registry.checkpoint(model_name)
    if not isinstance(ckpt.model.config.input, Tokens):
        raise InputError("predictions are shown for text models; this model reads "
                         f"{ckpt.model.config.input.KIND}")  # fmt: skip
    prepared = prepare(ckpt, prompt)  # no model run: outside the lock
    ids, n = prepared.token_ids(), len(prepared.labels)
    at = n - 1 if empty(position) else whole(position, 0, n - 1, "position")
    right = token_id(ckpt, answer_text, "answer")
    wrong = token_id(ckpt, wrong_text, "wrong token")
    with registry.running(model_name):
        top = top_predictions(ckpt.model, ids, min(k, ckpt.model.config.vocab_out))
        right = int(top.ids[at, 0]) if right is None else right
        if wrong == right:
            raise InputError("the answer and the token it is compared with are the same: "
                             "their difference is 0; choose another, or leave it empty")  # fmt: skip
        lens = logit_lens(ckpt.model, ids, target=right)
        try:
            dla = direct_logit_attribution(ckpt.model, ids, right, wrong, at)
        except InputError as exc:  # a model whose logits are not a sum: say why, keep the rest
            dla = str(exc)
        name = token_names(ckpt)
    labels = prepared.labels
    attribution = dla_bars(dla, name) if not isinstance(dla, str) else error_figure(dla)
    what = f"{name(right)!r}" + ("" if wrong is None else f" minus {name(wrong)!r}")
    line = f"logit lens target and attribution: {what} at position {at}:{labels[at]}"
    return top_k_table(top, labels, name), logit_lens_grid(lens, labels, name), attribution, line


def layout() -> html.Div:
    box = {"style": {"width": "120px", "marginRight": "12px"}, "debounce": True}
    return html.Div(
        style={"marginTop": "8px"},
        children=[
            html.Div(
                [
                    html.Label("top-k ", htmlFor="pred-k"),
                    dcc.Input(id="pred-k", type="number", value=5, min=1, max=MAX_K, **box),
                    html.Label("answer ", htmlFor="answer"),
                    dcc.Input(id="answer", type="text", placeholder="top prediction", **box),
                    html.Label("minus ", htmlFor="wrong"),
                    dcc.Input(id="wrong", type="text", placeholder="(nothing)", **box),
                    html.Label("at position ", htmlFor="position"),
                    dcc.Input(id="position", type="number", placeholder="last", min=0, **box),
                ]
            ),
            html.Div(id="pred-note", style={"color": "#555", "fontSize": "small"}),
            html.Div(id="pred-error", style={"color": "crimson"}),
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[
                    dcc.Loading(dcc.Graph(id="topk")),
                    dcc.Loading(dcc.Graph(id="lens")),
                    dcc.Loading(dcc.Graph(id="dla")),
                ],
            ),
        ],
    )


def register(app: dash.Dash, registry: ModelRegistry) -> None:
    @app.callback(
        Output("answer", "value"),
        Output("wrong", "value"),
        Output("position", "value"),
        Input("model", "value"),
    )
    def on_model(_: object):  # another model's tokens and positions mean nothing here
        return "", "", None

    @app.callback(
        Output("topk", "figure"),
        Output("lens", "figure"),
        Output("dla", "figure"),
        Output("pred-note", "children"),
        Output("pred-error", "children"),
        Input("pred-k", "value"),
        Input("answer", "value"),
        Input("wrong", "value"),
        Input("position", "value"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("tabs", "value"),
    )
    def on_predictions(k, right, wrong, position, _, prompt, model_name, tab):
        if tab != "predictions":  # computed when shown: the model's lock stays free meanwhile
            raise dash.exceptions.PreventUpdate

        def compute():
            return *predictions(registry, model_name, prompt, k, right, wrong, position), ""

        return answer(compute, error_figure, error_figure, error_figure, lambda _: "")
