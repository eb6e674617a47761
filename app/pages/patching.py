"""The patching page: activation patching (or an ablation) of one site over every layer,
position and head, on prompt pairs of the model's task or on a typed clean and corrupted
prompt, by the batched engine `workbench patch` runs (`app.patching`). A sweep runs in a
background thread (`app.background`) and lets other requests use the model between its
batched passes; the page polls its progress and can cancel it. The heatmap's hover gives the
fraction of the effect restored; a click on a cell shows that patched run's top tokens next
to the clean and corrupted runs', and offers to open a head's cell in the attention view
(`app.pages.links`)."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from app.background import Runs, RunState
from app.context import AppContext
from app.figures.patching import patch_heatmap
from app.pages import links
from app.pages.controls import (
    cancel_button,
    field,
    number_box,
    only_shown,
    placeholder,
    progress_line,
    radio,
    run_controls,
)
from app.patching import (
    ABLATIONS,
    EACH,
    MAX_PROMPTS,
    SOURCES,
    Settings,
    cell_tokens,
    checked_head,
    sweep,
)
from app.respond import answer, error_figure
from circuits.metrics import METRICS
from circuits.sites import SITES
from workbench.cli_options import SEED_RANGE
from workbench.errors import InputError

NAME = "patching"
TITLE = "patching"
POLL_MS = 400


def progress_text(state: RunState) -> list | str:
    """The progress line of a sweep."""
    return progress_line(state, "patches", lambda done: f"{len(done.result.configs)} patches")


def layout() -> html.Div:
    def text(id_: str, placeholder: str, width: str = "40%"):
        return dcc.Input(
            id=id_, type="text", value="", placeholder=placeholder, style={"width": width}
        )

    return html.Div(
        style={"marginTop": "10px"},
        children=[
            radio("patching-source", SOURCES, "task"),
            html.Div(
                id="patching-task-box",
                children=[
                    field("prompt pairs", number_box("patching-n", 8, 1, MAX_PROMPTS)),
                    field("seed", number_box("patching-seed", 0, 0, SEED_RANGE["max"])),
                ],
            ),
            html.Div(
                id="patching-typed-box",
                style={"display": "none"},
                children=[
                    html.Div(field("clean", text("patching-clean", "the clean prompt", "60%"))),
                    html.Div(
                        field(
                            "corrupted",
                            text("patching-corrupted", "the corrupted prompt (same length)", "60%"),
                        )
                    ),
                    field("answer", text("patching-answer", "default: clean's top token", "180px")),
                    field("wrong", text("patching-wrong", "default: corrupted's top", "180px")),
                ],
            ),
            html.Div(
                style={"marginTop": "6px"},
                children=[
                    html.Div(field("site", radio("patching-site", list(SITES), "resid_pre"))),
                    field("positions", radio("patching-positions", EACH, "each")),
                    field("heads", radio("patching-heads", EACH, "each")),
                    html.Div(field("ablation", radio("patching-ablation", ABLATIONS, "patch"))),
                    field("metric", radio("patching-metric", list(METRICS), "logit_diff")),
                ],
            ),
            *run_controls(NAME, "run patching", POLL_MS),
            dcc.Graph(id="patching-heatmap", figure=placeholder("run patching to see a sweep")),
            html.Div(
                [
                    field("prompt shown", number_box("patching-prompt", 0, 0, MAX_PROMPTS - 1)),
                    html.Button(
                        "open this head in the attention view",
                        id="patching-open",
                        n_clicks=0,
                        style={"display": "none"},
                    ),
                ]
            ),
            dcc.Store(id="patching-head"),
            html.Div(id="patching-cell-error", style={"color": "crimson"}),
            dcc.Graph(id="patching-topk", figure=placeholder("click a cell of the heatmap")),
        ],
    )


def register(app: dash.Dash, context: AppContext) -> None:
    registry = context.registry
    runs = Runs("patching run")
    hidden, shown = {"display": "none"}, {"display": "inline-block", "marginLeft": "8px"}

    @app.callback(
        Output("patching-task-box", "style"),
        Output("patching-typed-box", "style"),
        Input("patching-source", "value"),
    )
    def on_source(source: object):  # the controls of the chosen source; the others hidden
        typed = source == "typed"
        return ({"display": "none"} if typed else {}), ({} if typed else {"display": "none"})

    @app.callback(
        Output("patching-run", "data"),
        Output("patching-poll", "disabled"),
        Output("patching-heatmap", "figure", allow_duplicate=True),
        Output("patching-topk", "figure", allow_duplicate=True),
        Output("patching-open", "style", allow_duplicate=True),
        Output("patching-progress", "children", allow_duplicate=True),
        Output("patching-error", "children"),
        Input("patching-start", "n_clicks"),
        Input("page", "value"),
        State("patching-run", "data"),
        State("model", "value"),
        State("patching-source", "value"),
        State("patching-n", "value"),
        State("patching-seed", "value"),
        State("patching-clean", "value"),
        State("patching-corrupted", "value"),
        State("patching-answer", "value"),
        State("patching-wrong", "value"),
        State("patching-site", "value"),
        State("patching-positions", "value"),
        State("patching-heads", "value"),
        State("patching-ablation", "value"),
        State("patching-metric", "value"),
        prevent_initial_call=True,
    )
    def on_start(_clicks: object, page: object, previous: object, *values: object):
        only_shown(page, NAME, "patching-start")

        def compute():  # checks the settings; the sweep runs in a background thread
            settings = Settings.of(registry, *values)
            # this page's last sweep, if it still runs, gives way
            run_id = runs.start(lambda run: sweep(registry, settings, run), replaces=previous).id
            waiting = placeholder("running...")
            return run_id, False, waiting, placeholder(""), hidden, "starting", ""

        keep = lambda _: dash.no_update  # noqa: E731
        return answer(compute, keep, keep, keep, keep, keep, keep)

    @app.callback(
        Output("patching-progress", "children"),
        Output("patching-heatmap", "figure"),
        Output("patching-poll", "disabled", allow_duplicate=True),
        Output("patching-error", "children", allow_duplicate=True),
        Input("patching-poll", "n_intervals"),
        Input("page", "value"),
        State("patching-run", "data"),
        prevent_initial_call=True,
    )
    def on_poll(_ticks: object, page: object, run_id: object):
        if page != NAME or run_id is None:
            raise dash.exceptions.PreventUpdate

        def compute():
            state = runs.get(run_id).state()
            if state.status == "running":
                return progress_text(state), dash.no_update, False, ""
            if state.status == "done":
                finished = state.result
                figure = patch_heatmap(finished.result, finished.labels)
                return progress_text(state), figure, True, ""
            figure = error_figure(state.error or "cancelled")
            return progress_text(state), figure, True, state.error

        return answer(compute, lambda _: "", error_figure, lambda _: True)

    cancel_button(app, NAME, runs, "sweep", progress_text)

    @app.callback(
        Output("patching-topk", "figure"),
        Output("patching-open", "style"),
        Output("patching-open", "children"),
        Output("patching-head", "data"),
        Output("patching-cell-error", "children"),
        Input("patching-heatmap", "clickData"),
        Input("patching-prompt", "value"),
        Input("page", "value"),
        State("patching-run", "data"),
        prevent_initial_call=True,
    )
    def on_cell(click: object, prompt: object, page: object, run_id: object):
        if page != NAME or click is None or run_id is None:
            raise dash.exceptions.PreventUpdate

        def compute():
            state = runs.get(run_id).state()
            if state.status != "done":
                raise InputError("the sweep has no result yet: wait for it, or run it again")
            figure, head = cell_tokens(registry, state.result, click, prompt)
            if head is None:
                return figure, hidden, dash.no_update, None, ""
            label = f"open L{head['layer']}H{head['head']} in the attention view"
            return figure, shown, label, head, ""

        nothing = lambda _: dash.no_update  # noqa: E731
        return answer(compute, error_figure, lambda _: hidden, nothing, lambda _: None)

    @app.callback(
        *links.outputs(),
        Output("prompt", "value", allow_duplicate=True),
        Output("patching-cell-error", "children", allow_duplicate=True),
        Input("patching-open", "n_clicks"),
        State("page", "value"),
        State("patching-head", "data"),
        State("model", "value"),
        prevent_initial_call=True,
    )
    def on_open(_clicks: object, page: object, head: object, current: object):
        only_shown(page, NAME, "patching-open")

        def compute():
            layer, head_, model, prompt = checked_head(registry, head)
            opened = links.open_attention(registry.names, current, model, (layer, head_))
            # another model comes with its own example prompt
            text = prompt if prompt and model == current else dash.no_update
            return *opened, text, ""

        nothing = lambda _: dash.no_update  # noqa: E731
        return answer(compute, *[nothing] * 7)
