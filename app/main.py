"""The dashboard: pick an offered model, give it an input (a prompt in its vocabulary or text
for its tokenizer), and explore the input's attention in linked views (`app.views`).
`attention_figure` draws every head's pattern at once, for notebooks."""

from __future__ import annotations

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from app.figures.attention import attention_grid
from app.models import ModelRegistry
from app.prompts import describe_vocab, example_prompt
from app.respond import answer
from app.run import attention_patterns
from app.views import attention, inputs, neuron, predictions
from workbench.errors import WorkbenchError

# the page's sections, one tab each
TABS = {
    "attention": "attention",
    "predictions": "what the model predicts",
    "input": "image / series / RASP program",
}


def attention_figure(registry: ModelRegistry, model_name: object, prompt: object) -> go.Figure:
    patterns, prepared = attention_patterns(registry, model_name, prompt)
    labels = prepared.labels
    return attention_grid(patterns, labels, title=f"attention patterns ({len(labels)} tokens)")


def first_prompt(registry: ModelRegistry, name: str) -> str:
    """The example prompt of the model shown first ("" if it cannot load: the page says why)."""
    try:
        return example_prompt(registry.checkpoint(name))
    except WorkbenchError:
        return ""


def inputs_layout(registry: ModelRegistry, first: str) -> html.Div:
    return html.Div(
        [
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
            inputs.upload_layout(),
            html.Div(id="error", style={"color": "crimson", "marginTop": "8px"}),
        ]
    )


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
            inputs_layout(registry, first),
            dcc.Tabs(
                id="tabs",
                value="attention",
                children=[dcc.Tab(label=label, value=value) for value, label in TABS.items()],
            ),
            html.Div(id="section-attention", children=[attention.layout(), neuron.layout()]),
            html.Div(id="section-predictions", children=predictions.layout()),
            html.Div(id="section-input", children=inputs.layout()),
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

    @app.callback(*(Output(f"section-{tab}", "style") for tab in TABS), Input("tabs", "value"))
    def on_tab(shown: object):  # every section stays in the page; the others are hidden
        return [{"display": "block" if tab == shown else "none"} for tab in TABS]

    for view in (attention, neuron, predictions, inputs):
        view.register(app, registry)
    app.registry = registry  # type: ignore[attr-defined]  # for tests and notebooks
    return app
