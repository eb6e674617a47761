"""The dashboard: pick an offered model, type a prompt in its vocabulary or text for its
tokenizer, and see a model view (a layer x head matrix of per-head summaries of the prompt's
attention) linked to a head view (a click on a cell opens that head's pattern, or its layer's
average). `attention_figure` draws every head's pattern at once, for notebooks."""

from __future__ import annotations

import logging

import dash
import plotly.graph_objects as go
import torch
from dash import Input, Output, dcc, html

from app.figures.attention import attention_grid, head_matrix, head_pattern
from app.models import ModelRegistry
from probes.attention import METRICS, pattern_summaries
from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.config import AttentionKind
from workbench.errors import InputError, WorkbenchError
from workbench.tasks import make_task
from workbench.tasks.base import encode_words

LOG = logging.getLogger(__name__)
# attention kinds without a softmax: their pattern hook holds an effective mixing matrix
MIXING = {
    AttentionKind.LINEAR,
    AttentionKind.GATED_LINEAR,
    AttentionKind.DELTA,
    AttentionKind.POOLING,
}


def example_prompt(ckpt: Checkpoint) -> str:
    task = ckpt.meta.get("task")
    if task:
        return make_task(task["name"], **task.get("params", {})).example_prompt()
    if ckpt.has_tokenizer:
        return "The cat sat on the mat because it was tired."
    return " ".join(str(i) for i in range(min(8, ckpt.model.config.n_ctx)))


def encode(ckpt: Checkpoint, prompt: object) -> tuple[list[int], list[str]]:
    """Token ids and their labels: by the model's tokenizer, its task vocabulary, or as raw
    ids for a model without either. `prompt` comes from the browser: any type."""
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    words = prompt.split()
    if not words:
        raise InputError("the prompt is empty; type some text")
    if ckpt.has_tokenizer:
        tokenizer = ckpt.tokenizer()
        ids = tokenizer.encode(prompt).ids
        found = ids, [tokenizer.id_to_token(i) for i in ids]
    elif ckpt.vocab is None:
        if not all(w.isascii() and w.isdigit() and len(w) <= 9 for w in words):
            raise InputError(
                "this model has no vocabulary: type token ids, whole numbers from 0 to "
                f"{ckpt.model.config.d_vocab - 1} separated by spaces"
            )
        found = [int(w) for w in words], words
    else:
        found = encode_words(prompt, ckpt.vocab, "this model's vocabulary"), words
    n_ctx = ckpt.model.config.n_ctx
    if len(found[0]) > n_ctx:
        raise InputError(
            f"the prompt is {len(found[0])} tokens long; this model takes at most {n_ctx}: "
            "shorten it (nothing is cut silently)"
        )
    return found


def describe_vocab(ckpt: Checkpoint) -> str:
    limit = f"prompts of up to {ckpt.model.config.n_ctx} tokens"
    if ckpt.has_tokenizer:
        size = ckpt.tokenizer().get_vocab_size()
        return f"{limit}; tokenizer of the checkpoint ({size} tokens), nothing cut silently"
    vocab = ckpt.vocab or []
    return f"{limit}; vocabulary ({len(vocab)}): {' '.join(vocab)}"


def attention_patterns(
    registry: ModelRegistry, model_name: object, prompt: object, *, with_ids: bool = False
):
    """The patterns [layer, head, query, key] of `prompt` and its token labels (and ids),
    collected while this request alone runs the model (hooks on a shared model are shared
    state)."""
    with registry.running(model_name) as ckpt:
        ids, labels = encode(ckpt, prompt)
        model = ckpt.model
        hooks = [names.attn_pattern(i) for i in range(model.config.n_layers)]
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=hooks)
        patterns = torch.stack([cache[hook][0] for hook in hooks])
    return (patterns, labels, ids) if with_ids else (patterns, labels)


def attention_figure(registry: ModelRegistry, model_name: object, prompt: object) -> go.Figure:
    patterns, labels = attention_patterns(registry, model_name, prompt)
    return attention_grid(patterns, labels, title=f"attention patterns ({len(labels)} tokens)")


def error_figure(message: str) -> go.Figure:
    """What replaces a figure when its request failed: no stale numbers stay on the page."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"color": "crimson"})
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=200)
    return fig


def answer(compute, *outputs_on_error):
    """Run one callback's work: bad input becomes a message on the page (never an HTTP 500,
    never a server path); anything else is logged here and shown as an internal error."""
    try:
        return compute()
    except WorkbenchError as exc:
        message = str(exc)
        if len(message) > 500:  # an echoed input can be long
            message = message[:500] + " ..."
    except Exception:
        LOG.exception("dashboard callback failed")
        message = "internal error (logged on the server); try another input"
    return *(fill(message) for fill in outputs_on_error), message


def model_view(registry: ModelRegistry, model_name: object, prompt: object, metric: object):
    """The layer x head matrix of one summary of the prompt's patterns."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise InputError(
            f"unknown head summary {str(metric)[:40]!r}; choose one of: {', '.join(METRICS)}"
        )
    patterns, _, ids = attention_patterns(registry, model_name, prompt, with_ids=True)
    summaries = pattern_summaries(patterns, ids)
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


def head_view(
    registry: ModelRegistry, model_name: object, prompt: object, click: object, mode: object
):
    """One head's pattern large (or its layer's average), with its query and key labels."""
    patterns, labels = attention_patterns(registry, model_name, prompt)
    layer, head = clicked_head(click, *patterns.shape[:2])
    mixing = registry.checkpoint(model_name).model.config.attention in MIXING
    if mode == "average":
        title = f"layer {layer}, mean of heads"
        return head_pattern(patterns[layer].mean(0), labels, title, mixing=mixing)
    return head_pattern(patterns[layer, head], labels, f"head L{layer}H{head}", mixing=mixing)


def first_prompt(registry: ModelRegistry, name: str) -> str:
    """The example prompt of the model shown first ("" if it cannot load: the page says why)."""
    try:
        return example_prompt(registry.checkpoint(name))
    except WorkbenchError:
        return ""


def create_app(models: str | list[str] | None = None, models_dir: str | None = None) -> dash.Dash:
    """The dashboard offering the built-in models, each of `models` (names or checkpoint
    directories; the first is shown first) and the checkpoints in `models_dir`."""
    wanted = [models] if isinstance(models, str) else list(models or [])
    registry = ModelRegistry.offering(wanted, models_dir)
    first = registry.names[0]
    app = dash.Dash(__name__, title="workbench")
    app.layout = html.Div(
        style={"fontFamily": "sans-serif", "margin": "16px"},
        children=[
            html.H2("workbench: attention"),
            html.Div(
                [
                    html.Label("model ", htmlFor="model"),
                    dcc.Dropdown(
                        registry.names,
                        first,
                        id="model",
                        clearable=False,
                        style={"width": "320px", "display": "inline-block"},
                    ),
                ]
            ),
            html.Div(
                style={"marginTop": "8px"},
                children=[
                    html.Label("prompt ", htmlFor="prompt"),
                    dcc.Input(
                        id="prompt",
                        type="text",
                        value=first_prompt(registry, first),
                        debounce=True,
                        style={"width": "70%"},
                    ),
                    html.Button("run", id="run", n_clicks=0),
                ],
            ),
            html.Div(id="vocab", style={"color": "#555", "fontSize": "small", "marginTop": "4px"}),
            html.Div(id="error", style={"color": "crimson", "marginTop": "8px"}),
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
                    dcc.RadioItems(
                        [
                            {"label": "clicked head", "value": "head"},
                            {"label": "layer average", "value": "average"},
                        ],
                        "head",
                        id="head-mode",
                        inline=True,
                        style={"display": "inline-block", "marginLeft": "16px"},
                    ),
                ],
            ),
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
        ],
    )

    @app.callback(
        Output("prompt", "value"),
        Output("vocab", "children"),
        Output("error", "children", allow_duplicate=True),
        Input("model", "value"),
        prevent_initial_call="initial_duplicate",
    )
    def on_model(model_name: object):
        def compute():
            ckpt = registry.checkpoint(model_name)
            return example_prompt(ckpt), describe_vocab(ckpt), ""

        return answer(compute, lambda _: dash.no_update, lambda _: "")

    @app.callback(
        Output("overview", "figure"),
        Output("error", "children"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("metric", "value"),
        Input("model", "value"),
    )
    def on_prompt(_: object, prompt: object, metric: object, model_name: object):
        return answer(lambda: (model_view(registry, model_name, prompt, metric), ""), error_figure)

    @app.callback(
        Output("head", "figure"),
        Output("head-error", "children"),
        Input("overview", "clickData"),
        Input("head-mode", "value"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
    )
    def on_head(click: object, mode: object, _: object, prompt: object, model_name: object):
        return answer(
            lambda: (head_view(registry, model_name, prompt, click, mode), ""), error_figure
        )

    app.registry = registry  # type: ignore[attr-defined]  # for tests and notebooks
    return app
