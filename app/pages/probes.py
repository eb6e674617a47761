"""The probes page: one of four analyses of the model chosen at the top, computed as the probe
commands compute them (`app.probing`): linear probes per layer with a control task and
selectivity (`workbench probe`); the position/context decomposition (`workbench decompose`),
whose spiral and contexts are shown for a chosen layer in 2-D or 3-D; influential neuron paths
against their baselines (`workbench neuron-path`); and inversion of hidden states back to
tokens with the collision test (`workbench invert`), on the model's task sequences or the
prompt above. A run happens in a background thread (`app.background`) and lets other requests
use the model between its steps; the page polls its progress and can cancel it."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from app.background import Runs, RunState
from app.context import AppContext
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
from app.probing import (
    ANALYSES,
    MAX_COLLISION,
    MAX_PROMPTS,
    MAX_RANDOM,
    MAX_STEPS,
    MIN_PROMPTS,
    SOURCES,
    Settings,
    figure,
    run,
)
from app.respond import answer, error_figure
from probes.invert import INVERTIBLE_SITES
from probes.linear import KINDS
from probes.neuron_path import NEURON_SITES
from probes.sites import SITES
from workbench.cli_options import SEED_RANGE

NAME = "probes"
TITLE = "probes"
POLL_MS = 400
# each analysis's settings by their names in `Settings` (`control_id` gives their controls)
FIELDS = {
    "probe": ["site", "kind", "n_prompts", "seed"],
    "decompose": ["site", "n_prompts", "seed"],
    "neuron-path": ["site", "n_prompts", "steps", "n_random", "seed"],
    "invert": [
        "layer", "site", "source", "n_prompts", "n_collision", "tolerance", "certify", "seed",
    ],
}  # fmt: skip
DIMS = {"2": "2-D", "3": "3-D"}


def control_id(analysis: str, name: str) -> str:
    return f"probes-{analysis}-{name.replace('_', '-')}"


def progress_text(state: RunState) -> list | str:
    """The progress line of an analysis (its stage names the analysis once it runs)."""
    return progress_line(state, "steps", lambda done: ANALYSES[done.settings.analysis], staged=True)


def _boxes() -> list[html.Div]:
    def n(analysis: str, value: int) -> dcc.Input:
        return number_box(
            control_id(analysis, "n_prompts"), value, MIN_PROMPTS[analysis], MAX_PROMPTS[analysis]
        )

    def seed(analysis: str) -> html.Span:
        return field("seed", number_box(control_id(analysis, "seed"), 0, 0, SEED_RANGE["max"]))

    probe = [
        html.Div(field("site", radio(control_id("probe", "site"), list(SITES), "resid_post"))),
        field("probe", radio(control_id("probe", "kind"), list(KINDS), "logistic")),
        field("sequences of the task", n("probe", 64)),
        seed("probe"),
    ]
    decompose = [
        html.Div(field("site", radio(control_id("decompose", "site"), list(SITES), "resid_post"))),
        field("contexts (sequences of the task)", n("decompose", 256)),
        seed("decompose"),
    ]
    path = [
        field("neurons", radio(control_id("neuron-path", "site"), list(NEURON_SITES), "mlp_post")),
        field("examples of the task", n("neuron-path", 2)),
        field(
            "integration steps",
            number_box(control_id("neuron-path", "steps"), 20, 1, MAX_STEPS),
        ),
        field("random paths", number_box(control_id("neuron-path", "n_random"), 10, 0, MAX_RANDOM)),
        seed("neuron-path"),
    ]
    invert = [
        html.Div(
            [
                field("layer", number_box(control_id("invert", "layer"), 0, 0, 10_000)),
                field(
                    "site",
                    radio(control_id("invert", "site"), list(INVERTIBLE_SITES), "resid_post"),
                ),
                field("invert", radio(control_id("invert", "source"), SOURCES, "task")),
            ]
        ),
        field("sequences", n("invert", 2)),
        field(
            "collision test over",
            number_box(control_id("invert", "n_collision"), 64, 0, MAX_COLLISION),
        ),
        field(
            "tolerance",
            number_box(control_id("invert", "tolerance"), 1e-3, 0, 1e3, step="any"),
        ),
        dcc.Checklist(
            [{"label": " certify (every token: margins and ambiguity)", "value": "certify"}],
            ["certify"],
            id=control_id("invert", "certify"),
            style={"display": "inline-block", "marginRight": "14px"},
        ),
        seed("invert"),
    ]
    boxes = {"probe": probe, "decompose": decompose, "neuron-path": path, "invert": invert}
    return [
        html.Div(
            id=f"probes-box-{analysis}",
            style={} if analysis == "probe" else {"display": "none"},
            children=children,
        )
        for analysis, children in boxes.items()
    ]


def layout() -> html.Div:
    return html.Div(
        style={"marginTop": "10px"},
        children=[
            radio("probes-analysis", ANALYSES, "probe"),
            html.Div(style={"marginTop": "6px"}, children=_boxes()),
            *run_controls(NAME, "run", POLL_MS),
            html.Div(
                id="probes-view",
                style={"display": "none"},
                children=[
                    field("layer shown", radio("probes-view-layer", [], "")),
                    field("spiral", radio("probes-view-dims", DIMS, "3")),
                ],
            ),
            dcc.Graph(id="probes-figure", figure=placeholder("choose an analysis and run it")),
        ],
    )


def _states() -> list[State]:
    return [State(control_id(a, name), "value") for a, names in FIELDS.items() for name in names]


def _values(flat: tuple) -> dict[str, dict[str, object]]:
    """The settings' values by analysis and name, from the states in `_states` order."""
    values: dict[str, dict[str, object]] = {}
    it = iter(flat)
    for analysis, names in FIELDS.items():
        values[analysis] = {name: next(it) for name in names}
    return values


def register(app: dash.Dash, context: AppContext) -> None:
    registry = context.registry
    runs = Runs("probes run")
    hidden = {"display": "none"}

    @app.callback(
        *(Output(f"probes-box-{analysis}", "style") for analysis in ANALYSES),
        Input("probes-analysis", "value"),
    )
    def on_analysis(chosen: object):  # the chosen analysis's settings; the others hidden
        return [{} if chosen == analysis else hidden for analysis in ANALYSES]

    @app.callback(
        Output("probes-run", "data"),
        Output("probes-poll", "disabled"),
        Output("probes-figure", "figure", allow_duplicate=True),
        Output("probes-view", "style", allow_duplicate=True),
        Output("probes-progress", "children", allow_duplicate=True),
        Output("probes-error", "children"),
        Input("probes-start", "n_clicks"),
        Input("page", "value"),
        State("probes-run", "data"),
        State("model", "value"),
        State("prompt", "value"),
        State("probes-analysis", "value"),
        *_states(),
        prevent_initial_call=True,
    )
    def on_start(_clicks: object, page: object, previous: object, model, prompt, chosen, *flat):
        only_shown(page, NAME, "probes-start")

        def compute():  # checks the settings; the analysis runs in a background thread
            values = _values(flat).get(chosen) if isinstance(chosen, str) else None
            settings = Settings.of(registry, chosen, model, values or {}, prompt)
            # this page's last run, if it still runs, gives way
            run_id = runs.start(
                lambda current: run(registry, settings, current), replaces=previous
            ).id
            return run_id, False, placeholder("running..."), hidden, "starting", ""

        keep = lambda _: dash.no_update  # noqa: E731
        return answer(compute, keep, keep, keep, keep, keep)

    @app.callback(
        Output("probes-progress", "children"),
        Output("probes-figure", "figure"),
        Output("probes-poll", "disabled", allow_duplicate=True),
        Output("probes-view", "style"),
        Output("probes-view-layer", "options"),
        Output("probes-view-layer", "value"),
        Output("probes-error", "children", allow_duplicate=True),
        Input("probes-poll", "n_intervals"),
        Input("page", "value"),
        State("probes-run", "data"),
        State("probes-view-dims", "value"),
        prevent_initial_call=True,
    )
    def on_poll(_ticks: object, page: object, run_id: object, dims: object):
        if page != NAME or run_id is None:
            raise dash.exceptions.PreventUpdate

        def compute():
            state = runs.get(run_id).state()
            shown, keep = progress_text(state), dash.no_update
            if state.status == "running":
                return shown, keep, False, keep, keep, keep, ""
            if state.status != "done":
                failed = error_figure(state.error or "cancelled")
                return shown, failed, True, keep, keep, keep, state.error
            finished = state.result
            if finished.settings.analysis != "decompose":
                return shown, figure(finished), True, hidden, keep, keep, ""
            layers = [str(g.layer) for g in finished.result.layers]
            drawn = figure(
                finished, None, _dims(dims) if isinstance(dims, str) and dims in DIMS else 3
            )
            return shown, drawn, True, {}, layers, layers[-1], ""

        keep = lambda _: dash.no_update  # noqa: E731
        return answer(compute, lambda _: "", error_figure, lambda _: True, keep, keep, keep)

    @app.callback(
        Output("probes-figure", "figure", allow_duplicate=True),
        Output("probes-error", "children", allow_duplicate=True),
        Input("probes-view-layer", "value"),
        Input("probes-view-dims", "value"),
        Input("page", "value"),
        State("probes-run", "data"),
        prevent_initial_call=True,
    )
    def on_view(layer: object, dims: object, page: object, run_id: object):
        if page != NAME or run_id is None or layer in (None, ""):
            raise dash.exceptions.PreventUpdate

        def compute():
            state = runs.get(run_id).state()
            if state.status != "done" or state.result.settings.analysis != "decompose":
                return dash.no_update, dash.no_update  # the poll draws it when it is done
            return figure(state.result, _layer(layer), _dims(dims)), ""

        return answer(compute, error_figure)

    cancel_button(app, NAME, runs, "analysis", progress_text)


def _layer(value: object) -> object:
    """The radio buttons' layer (a string) as a number; anything else as it came (the
    figure's check says what it takes)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 6:
        return int(value)
    return value


def _dims(value: object) -> object:
    return {"2": 2, "3": 3}.get(value, value) if isinstance(value, str) else value
