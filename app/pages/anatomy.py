"""The model anatomy page: a block diagram of the shown model's wiring (`app.figures.anatomy`:
sequential, parallel, dual-stream, weight ties and loops, DenseFormer depth weights, GQA/MQA,
gates), drawn from its config's hook schema; a click on a hook point shows its name, its
dimensions, its shape for the page's input, and the values it took on that input."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html
from torch import Tensor

from app.context import AppContext
from app.figures.anatomy import activation, anatomy, summary
from app.models import ModelRegistry
from app.pages.controls import only_shown
from app.respond import answer, error_figure
from app.run import hook_values, prepare
from workbench import names
from workbench.config import ModelConfig
from workbench.errors import InputError
from workbench.schema import HookSpec, hook_schema

NAME = "anatomy"
TITLE = "model anatomy"


def diagram(registry: ModelRegistry, model_name: object):
    """The block diagram of the model, and its wiring in one line."""
    ckpt = registry.checkpoint(model_name)
    config = ckpt.model.config
    weights = None
    if config.depth_weighted:
        with registry.running(model_name):  # parameters that training may have changed
            weights = ckpt.model.depth_weights()
    title = "hook points in forward order: click one for its name, shape and values"
    return anatomy(config, weights, title), summary(config)


def clicked_hook(click: object, config: ModelConfig) -> HookSpec:
    """The hook point of a diagram click (browser data: checked), or the last block's
    output when nothing is clicked."""
    specs = {spec.name: spec for spec in hook_schema(config)}
    if click is None:
        return specs[names.resid_post(config.n_layers - 1)]
    try:
        name = click["points"][0]["customdata"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        raise InputError(
            "could not read the clicked point; click a hook point of the diagram"
        ) from None
    if not isinstance(name, str) or name not in specs:
        raise InputError(
            f"this model has no hook point {repr(name)[:60]}; click one of the diagram"
        )
    return specs[name]


def shape_for(spec: HookSpec, n_positions: int) -> tuple[int, ...]:
    """The schema's shape with its free sizes filled for one input of `n_positions`."""
    free = {"batch": 1, "pos": n_positions, "query_pos": n_positions, "key_pos": n_positions}
    return tuple(free[d] if s is None else s for d, s in zip(spec.dims, spec.shape, strict=True))


def hook_view(
    registry: ModelRegistry, model_name: object, prompt: object, click: object, upload=None
):
    """The clicked hook point's values on the page's input, and what the hook point is."""
    ckpt = registry.checkpoint(model_name)
    spec = clicked_hook(click, ckpt.model.config)
    prepared = prepare(ckpt, prompt, upload)
    values: Tensor = hook_values(registry, model_name, prepared, spec.name)
    one = values[0] if spec.dims[:1] == ("batch",) else values
    fig = activation(one, spec, prepared.labels)
    schema = ", ".join("·" if s is None else str(s) for s in spec.shape)
    info = (
        f"{spec.name}: [{', '.join(spec.dims)}]; schema [{schema}]; for this input of "
        f"{len(prepared.labels)} positions {list(shape_for(spec, len(prepared.labels)))}"
    )
    return fig, info


def layout() -> html.Div:
    return html.Div(
        style={"marginTop": "8px"},
        children=[
            html.Div(id="anatomy-summary", style={"color": "#555"}),
            html.Div(id="anatomy-error", style={"color": "crimson"}),
            dcc.Loading(dcc.Graph(id="anatomy-diagram")),
            html.Div("click a hook point for its values on the prompt", style={"color": "#555"}),
            html.Div(id="anatomy-hook", style={"fontFamily": "monospace", "marginTop": "4px"}),
            html.Div(id="anatomy-hook-error", style={"color": "crimson"}),
            dcc.Loading(dcc.Graph(id="anatomy-values")),
        ],
    )


def register(app: dash.Dash, context: AppContext) -> None:
    registry = context.registry

    @app.callback(
        Output("anatomy-diagram", "figure"),
        Output("anatomy-summary", "children"),
        Output("anatomy-diagram", "clickData"),
        Output("anatomy-error", "children"),
        Input("model", "value"),
        Input("page", "value"),
    )
    def on_model(model_name, page):
        only_shown(page, NAME)
        return answer(
            lambda: (*diagram(registry, model_name), None, ""),
            error_figure,
            lambda _: "",
            lambda _: None,
        )

    @app.callback(
        Output("anatomy-values", "figure"),
        Output("anatomy-hook", "children"),
        Output("anatomy-hook-error", "children"),
        Input("anatomy-diagram", "clickData"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("image", "data"),
        Input("page", "value"),
    )
    def on_hook(click, _, prompt, model_name, image, page):
        only_shown(page, NAME)
        return answer(
            lambda: (*hook_view(registry, model_name, prompt, click, image), ""),
            error_figure,
            lambda _: "",
        )
