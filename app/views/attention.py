"""The attention views, linked: the model view (a layer x head matrix of per-head summaries)
opens a head in the head view (one head, its layer's average, or several heads overlaid; as a
matrix or as BertViz-style lines) and a layer in the token view (what a clicked token attends
to and what attends to it, across the layer's heads). A zoom on the head matrix fetches the
zoomed window from the server at full resolution."""

from __future__ import annotations

import math

import dash
from dash import Input, Output, State, dcc, html

from app.checks import integer
from app.figures.attention import Window, head_lines, head_matrix, head_overlay, head_pattern
from app.figures.attention import token_view as token_figure
from app.models import ModelRegistry
from app.respond import answer, error_figure
from app.run import attention_patterns
from probes.attention import METRICS, pattern_summaries
from workbench.checkpoint import Checkpoint
from workbench.errors import InputError

MODES = {"head": "clicked head", "average": "layer average", "overlay": "heads overlaid"}
STYLES = {"matrix": "matrix", "lines": "lines"}


def model_view(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    metric: object,
    upload: object = None,
):
    """The layer x head matrix of one summary of the prompt's patterns."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise InputError(
            f"unknown head summary {str(metric)[:40]!r}; choose one of: {', '.join(METRICS)}"
        )
    patterns, prepared = attention_patterns(registry, model_name, prompt, upload)
    ids = prepared.ids if prepared.ids is not None else list(range(len(prepared.labels)))
    summaries = pattern_summaries(patterns, ids, [metric])
    return head_matrix(summaries.values[metric], metric, METRICS[metric])


def clicked_head(click: object, n_layers: int, n_heads: int) -> tuple[int, int]:
    """The (layer, head) of a model-view click (browser data: checked), or (0, 0)."""
    if click is None:
        return 0, 0
    try:
        point = click["points"][0]  # type: ignore[index]
        layer, head = int(str(point["y"]).lstrip("L")), int(str(point["x"]).lstrip("H"))
    except (TypeError, KeyError, IndexError, ValueError):
        raise InputError(
            "could not read the clicked cell; click a cell of the model view"
        ) from None
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(f"no head L{layer}H{head} in this model; click a cell of the model view")
    return layer, head


def chosen_heads(chosen: object, n_heads: int) -> list[int]:
    """The heads to overlay (browser data: checked); all of them when none is chosen."""
    if chosen in (None, []):
        return list(range(n_heads))
    if not isinstance(chosen, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and 0 <= h < n_heads for h in chosen
    ):
        raise InputError(f"choose heads to overlay among H0..H{n_heads - 1}")
    return sorted(set(chosen))


def window_of(stored: object, n: int) -> Window:
    """The window to draw (browser data: checked), or every position."""
    if stored is None:
        return Window.full(n)
    try:
        q0, q1, k0, k1 = (integer(v) for v in stored)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError("could not read the zoomed window; double-click to reset") from None
    if not (0 <= q0 < q1 <= n and 0 <= k0 < k1 <= n):
        return Window.full(n)  # a window of an earlier, longer prompt
    return Window(q0, q1, k0, k1)


def head_view(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    click: object,
    mode: object = "head",
    style: object = "matrix",
    overlaid: object = None,
    window: object = None,
    upload: object = None,
):
    """One head (or its layer's average, or several heads overlaid), as a matrix or lines,
    over the window of positions; and the window drawn."""
    patterns, prepared = attention_patterns(registry, model_name, prompt, upload)
    layer, head = clicked_head(click, *patterns.shape[:2])
    if mode not in MODES or style not in STYLES:
        raise InputError(f"choose a head view among {list(MODES)} and {list(STYLES)}")
    shown = window_of(window, patterns.shape[-1])
    ckpt = registry.checkpoint(model_name)
    mixing = not ckpt.model.config.layer(layer).attention.softmax_scores
    labels = prepared.labels
    if mode == "overlay":
        heads = chosen_heads(overlaid, patterns.shape[1])
        chosen = {f"L{layer}H{h}": patterns[layer, h] for h in heads}
        title = f"layer {layer}, heads {', '.join(f'H{h}' for h in heads)}"
        draw = head_lines if style == "lines" else head_overlay
        return draw(chosen, labels, title, window=shown), shown
    pattern = patterns[layer].mean(0) if mode == "average" else patterns[layer, head]
    title = f"layer {layer}, mean of heads" if mode == "average" else head_title(ckpt, layer, head)
    if style == "lines":
        return head_lines({title: pattern}, labels, title, window=shown), shown
    return head_pattern(pattern, labels, title, mixing=mixing, window=shown), shown


def head_title(ckpt: Checkpoint, layer: int, head: int) -> str:
    """`head L{layer}H{head}`, and for a compiled RASP program what the head computes."""
    title = f"head L{layer}H{head}"
    if isinstance(ckpt.meta.get("rasp"), dict):
        from rasp.readout import rasp_labels

        name = rasp_labels(ckpt).head_name(layer, head)
        title += f": {name}" if name else " (unused by the program)"
    return title


def zoomed(relayout: object, drawn: object) -> list[int] | None:
    """The window a zoom on the head matrix asks for, in positions (None: every position).
    `drawn` is what the figure shows: its window, and where its cells sit on the axes (cell i
    of an axis at origin + i * block, standing for positions start + i * block onwards)."""
    if not isinstance(relayout, dict) or not isinstance(drawn, dict):
        raise dash.exceptions.PreventUpdate
    if relayout.get("xaxis.autorange") or relayout.get("yaxis.autorange"):
        return None
    if not any(key.startswith(("xaxis.range", "yaxis.range")) for key in relayout):
        raise dash.exceptions.PreventUpdate  # a resize, a render: no zoom
    try:
        q0, q1, k0, k1 = (integer(v) for v in drawn["window"])
        origin_q, origin_k = (integer(v) for v in drawn["origin"])
        block_q, block_k = (integer(v) for v in drawn["block"])
        queries = _positions(relayout, "yaxis", (q0, q1), origin_q, block_q)
        keys = _positions(relayout, "xaxis", (k0, k1), origin_k, block_k)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise dash.exceptions.PreventUpdate from None  # a resize, a pan, garbage ...
    if queries[0] >= queries[1] or keys[0] >= keys[1]:
        raise dash.exceptions.PreventUpdate
    return [*queries, *keys]


def _positions(
    relayout: dict, axis: str, shown: tuple[int, int], origin: int, block: int
) -> tuple[int, int]:
    """The positions [start, end) of the cells a zoom shows on one axis; an axis the zoom
    leaves alone keeps what it showed."""
    if f"{axis}.range" in relayout:  # a relayout call: "xaxis.range": [a, b]
        found = relayout[f"{axis}.range"]
        if not isinstance(found, list) or len(found) != 2:
            raise ValueError(found)
    elif f"{axis}.range[0]" in relayout:  # a drag: "xaxis.range[0]", "xaxis.range[1]"
        found = [relayout[f"{axis}.range[0]"], relayout[f"{axis}.range[1]"]]
    else:
        return shown
    low, high = sorted(float(v) for v in found)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(found)
    # cell i spans origin + (i -+ 1/2) * block: the first and last cells the range touches
    first = math.ceil((low - origin) / block - 0.5 + 1e-9)
    last = math.floor((high - origin) / block + 0.5 - 1e-9)
    start, end = shown
    return max(start, start + first * block), min(end, start + (last + 1) * block)


def token_view(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    click: object,
    token: object,
    upload: object = None,
):
    """The layer of the model-view click, around the clicked token (default: the last)."""
    patterns, prepared = attention_patterns(registry, model_name, prompt, upload)
    layer, _ = clicked_head(click, *patterns.shape[:2])
    n = patterns.shape[-1]
    position = n - 1
    if token is not None:
        try:
            label = str(token["points"][0]["x"])  # type: ignore[index]
            position = int(label.split(":", 1)[0])
        except (TypeError, KeyError, IndexError, ValueError):
            raise InputError("could not read the clicked token; click a token's column") from None
        if not 0 <= position < n:
            position = n - 1  # a click on an earlier, longer prompt
    return token_figure(patterns[layer], prepared.labels, position, layer)


def layout() -> html.Div:
    radio = {"inline": True, "style": {"display": "inline-block", "marginLeft": "16px"}}
    return html.Div(
        [
            html.Div(
                style={"marginTop": "8px"},
                children=[
                    html.Label("head summary ", htmlFor="metric"),
                    dcc.Dropdown(
                        [{"label": v, "value": k} for k, v in METRICS.items()],
                        "induction",
                        id="metric",
                        clearable=False,
                        style={"width": "520px", "display": "inline-block"},
                    ),
                ],
            ),
            html.Div(
                style={"marginTop": "8px"},
                children=[
                    html.Span("head view: "),
                    dcc.RadioItems(list_of(MODES), "head", id="head-mode", **radio),
                    dcc.RadioItems(list_of(STYLES), "matrix", id="head-style", **radio),
                    dcc.Dropdown(
                        [],
                        [],
                        id="overlay-heads",
                        multi=True,
                        placeholder="heads to overlay (all)",
                        style={"width": "360px", "display": "inline-block"},
                    ),
                ],
            ),
            dcc.Store(id="window"),  # the zoomed window of the head matrix, in positions
            dcc.Store(id="head-drawn"),  # the window the head figure shows
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[
                    dcc.Loading(dcc.Graph(id="overview")),
                    html.Div(
                        [
                            html.Div(id="head-error", style={"color": "crimson"}),
                            dcc.Loading(dcc.Graph(id="head")),
                        ]
                    ),
                ],
            ),
            html.Div(id="token-error", style={"color": "crimson"}),
            dcc.Loading(dcc.Graph(id="token")),
        ]
    )


def list_of(choices: dict[str, str]) -> list[dict[str, str]]:
    return [{"label": v, "value": k} for k, v in choices.items()]


def register(app: dash.Dash, registry: ModelRegistry) -> None:
    page = (
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("image", "data"),
    )

    @app.callback(
        Output("overview", "figure"),
        Output("error", "children"),
        Input("metric", "value"),
        *page,
    )
    def on_overview(metric, _, prompt, model_name, image):
        return answer(
            lambda: (model_view(registry, model_name, prompt, metric, image), ""), error_figure
        )

    @app.callback(
        Output("overlay-heads", "options"),
        Output("overlay-heads", "value"),
        Output("overview", "clickData"),
        Input("model", "value"),
    )
    def on_model(model_name: object):  # another model's heads mean nothing here
        try:
            n_heads = registry.checkpoint(model_name).model.config.n_heads
        except InputError:
            return [], [], None  # the page's error line says why
        return [{"label": f"H{h}", "value": h} for h in range(n_heads)], [], None

    @app.callback(
        Output("head", "clickData"),
        *page,
    )
    def on_input(*_: object):  # a query clicked on another input means nothing here
        return None

    @app.callback(
        Output("window", "data"),
        Input("head", "relayoutData"),
        *page,
        State("head-drawn", "data"),
    )
    def on_zoom(relayout: object, *page_and_drawn: object):
        drawn = page_and_drawn[-1]
        if dash.ctx.triggered_id != "head":
            return None  # a new prompt or model: every position
        return zoomed(relayout, drawn)

    @app.callback(
        Output("head", "figure"),
        Output("head-drawn", "data"),
        Output("head-error", "children"),
        Input("overview", "clickData"),
        Input("head-mode", "value"),
        Input("head-style", "value"),
        Input("overlay-heads", "value"),
        Input("window", "data"),
        *page,
    )
    def on_head(click, mode, style, overlaid, window, _, prompt, model_name, image):
        def compute():
            fig, shown = head_view(
                registry, model_name, prompt, click, mode, style, overlaid, window, image
            )
            if style == "lines":  # no zoom: a window is chosen on the matrix
                return fig, None, ""
            drawn = {"window": [shown.q0, shown.q1, shown.k0, shown.k1], **fig.layout.meta}
            return fig, drawn, ""

        return answer(compute, error_figure, lambda _: None)

    @app.callback(
        Output("token", "figure"),
        Output("token-error", "children"),
        Input("overview", "clickData"),
        Input("token", "clickData"),
        *page,
    )
    def on_token(click, token, _, prompt, model_name, image):
        if dash.ctx.triggered_id != "token":
            token = None  # a new layer, prompt or model: the last token
        return answer(
            lambda: (token_view(registry, model_name, prompt, click, token, image), ""),
            error_figure,
        )
