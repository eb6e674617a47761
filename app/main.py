"""The first dashboard: pick a built-in model (or a pretrained one from an installed extra),
type a prompt in its vocabulary or text for its tokenizer, and see the attention pattern of
every layer and head."""

from __future__ import annotations

from functools import lru_cache

import dash
import torch
from dash import Input, Output, State, dcc, html

import workbench
from app.figures import attention_grid
from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.errors import WorkbenchError
from workbench.tasks import make_task
from workbench.tasks.base import encode_words


@lru_cache(maxsize=8)
def _checkpoint(name: str) -> Checkpoint:
    return workbench.open_checkpoint(name)


def example_prompt(ckpt: Checkpoint) -> str:
    task = ckpt.meta.get("task")
    if task:
        return make_task(task["name"], **task.get("params", {})).example_prompt()
    if ckpt.has_tokenizer:
        return "The cat sat on the mat because it was tired."
    return " ".join(str(i) for i in range(min(8, ckpt.model.config.n_ctx)))


def encode(ckpt: Checkpoint, prompt: str) -> tuple[list[int], list[str]]:
    """Token ids and their labels: by the model's tokenizer, its task vocabulary, or as raw
    ids for a model without either."""
    words = prompt.split()
    if not words:
        raise WorkbenchError("the prompt is empty; type some text")
    if ckpt.has_tokenizer:
        tokenizer = ckpt.tokenizer()
        ids = tokenizer.encode(prompt).ids
        return ids, [tokenizer.id_to_token(i) for i in ids]
    if ckpt.vocab is None:
        return [int(w) for w in words], words
    return encode_words(prompt, ckpt.vocab, "this model's vocabulary"), words


def describe_vocab(ckpt: Checkpoint) -> str:
    if ckpt.has_tokenizer:
        return f"tokenizer of the checkpoint ({ckpt.tokenizer().get_vocab_size()} tokens)"
    vocab = ckpt.vocab or []
    return f"vocabulary ({len(vocab)}): {' '.join(vocab)}"


def attention_figure(ckpt: Checkpoint, prompt: str):
    ids, labels = encode(ckpt, prompt)
    model = ckpt.model
    n_layers = model.config.n_layers
    with torch.no_grad():
        _, cache = model.run_with_cache(
            torch.tensor([ids]), names_filter=[names.attn_pattern(i) for i in range(n_layers)]
        )
    patterns = torch.stack([cache[names.attn_pattern(i)][0] for i in range(n_layers)])
    return attention_grid(patterns, labels, title=f"attention patterns ({len(ids)} tokens)")


def create_app(default_model: str | None = None) -> dash.Dash:
    models = workbench.list_builtin_models()
    if default_model is not None and default_model not in models:
        _checkpoint(default_model)  # fail early on a bad path
        models = [default_model, *models]
    if not models:
        raise WorkbenchError("no built-in model found; reinstall the package or pass --model DIR")
    first = default_model or models[0]
    app = dash.Dash(__name__, title="workbench")
    app.layout = html.Div(
        style={"fontFamily": "sans-serif", "margin": "16px"},
        children=[
            html.H2("workbench: attention patterns"),
            html.Div(
                [
                    html.Label("model ", htmlFor="model"),
                    dcc.Dropdown(
                        models,
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
                        value=example_prompt(_checkpoint(first)),
                        debounce=True,
                        style={"width": "70%"},
                    ),
                    html.Button("run", id="run", n_clicks=0),
                ],
            ),
            html.Div(id="vocab", style={"color": "#555", "fontSize": "small", "marginTop": "4px"}),
            html.Div(id="error", style={"color": "crimson", "marginTop": "8px"}),
            dcc.Loading(dcc.Graph(id="attention")),
        ],
    )

    @app.callback(Output("prompt", "value"), Output("vocab", "children"), Input("model", "value"))
    def on_model(model_name: str) -> tuple[str, str]:
        ckpt = _checkpoint(model_name)
        return example_prompt(ckpt), describe_vocab(ckpt)

    @app.callback(
        Output("attention", "figure"),
        Output("error", "children"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        State("model", "value"),
    )
    def on_prompt(_: int, prompt: str, model_name: str):
        try:
            return attention_figure(_checkpoint(model_name), prompt or ""), ""
        except WorkbenchError as exc:
            return dash.no_update, str(exc)

    return app
