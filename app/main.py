"""The dashboard: pick an offered model, give it an input (a prompt in its vocabulary or text
for its tokenizer, an image, a series), and explore it on the pages of `app.pages` (the
attention page's linked views are in `app.views`).
`attention_figure` draws every head's pattern at once, for notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from app.context import AppContext
from app.figures.attention import attention_grid
from app.models import ModelRegistry
from app.pages import PAGES, links
from app.prompts import describe_vocab, example_prompt
from app.respond import answer
from app.run import attention_patterns
from app.views import inputs
from app.workers import Workers
from workbench.errors import WorkbenchError


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


def create_app(
    models: str | list[str] | None = None,
    models_dir: str | None = None,
    store: str | Path | None = None,
) -> dash.Dash:
    """The dashboard offering the built-in models, each of `models` (names or checkpoint
    directories; the first is shown first) and the checkpoints in `models_dir`; its circuits
    page reads the job store `store` (default: `workbench discover`'s) and launches jobs into
    it. The store is made by the first job, not here."""
    from circuits.cli import DEFAULT_STORE
    from workbench.store import check_path

    wanted = [models] if isinstance(models, str) else list(models or [])
    registry = ModelRegistry.offering(wanted, models_dir)
    where = Path(os.path.abspath(DEFAULT_STORE if store is None else store))
    check_path(where, must_exist=False)  # a directory or another file fails at start-up
    sources = {registry.get(name).source: name for name in registry.names}
    context = AppContext(registry, where, Workers(where, redact=sources))
    first = registry.names[0]
    app = dash.Dash(__name__, title="workbench")
    app.layout = html.Div(
        style={"fontFamily": "sans-serif", "margin": "16px"},
        children=[
            html.H2("workbench"),
            inputs_layout(registry, first),
            dcc.Tabs(
                id="page",
                value=PAGES[0].NAME,
                children=[dcc.Tab(label=page.TITLE, value=page.NAME) for page in PAGES],
                style={"marginTop": "8px"},
            ),
            *(html.Div(id=f"page-{page.NAME}", children=page.layout()) for page in PAGES),
            links.store(),
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

    @app.callback(*(Output(f"page-{page.NAME}", "style") for page in PAGES), Input("page", "value"))
    def on_page(shown: object):  # every page stays in the document; the others are hidden
        return [{"display": "block" if shown == page.NAME else "none"} for page in PAGES]

    for page in PAGES:
        page.register(app, context)
    links.register(app)
    app.registry = registry  # type: ignore[attr-defined]  # for tests and notebooks
    app.context = context  # type: ignore[attr-defined]
    return app
