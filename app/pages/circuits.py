"""The circuits page: the job store as a table with live progress; a form that launches a
discovery job on the model chosen above (in a worker process, `app.launch`); cancel and resume;
and the chosen job's circuit as a layered graph with a threshold slider, its edge scores, its
faithfulness curve and, for a compiled RASP program, its ROC against the ground truth. A click
on a head opens it in the attention view.

The page polls the store every second while it is shown; no callback waits for a job."""

from __future__ import annotations

import math

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from app import launch
from app.context import AppContext
from app.figures.circuits import (
    circuit_graph,
    faithfulness_curve,
    head_of,
    roc_figure,
    score_histogram,
)
from app.jobs import (
    circuit_threshold,
    find_job,
    job_circuit,
    job_curves,
    job_roc,
    model_label,
    offered_name,
    read_jobs,
    stored_faithfulness,
    table,
    table_rows,
)
from app.pages import links
from app.pages.controls import only_shown, placeholder
from app.respond import answer, error_figure
from circuits.circuit import Circuit
from workbench.errors import InputError
from workbench.store import Job

NAME = "circuits"
TITLE = "circuits"
POLL_MS = 1000
SMALL = {"color": "#555", "fontSize": "small"}
THIRD = {"flex": "1 1 0", "minWidth": 0}  # three figures side by side


def _field(label: str, control) -> html.Div:
    return html.Div(
        [html.Label(label, style=SMALL), control],
        style={"display": "inline-block", "marginRight": "10px", "verticalAlign": "top"},
    )


def _dropdown(key: str, options: list[str], width: int = 130) -> html.Div:
    control = dcc.Dropdown(
        options, launch.DEFAULTS[key], id=f"circuits-{key}", clearable=False,
        style={"width": f"{width}px"},
    )  # fmt: skip
    return _field(key.replace("_", " "), control)


def _number(key: str, label: str, step: float | str = 1) -> html.Div:
    control = dcc.Input(
        id=f"circuits-{key}", type="number", value=launch.DEFAULTS[key], step=step,
        style={"width": "90px"},
    )  # fmt: skip
    return _field(label, control)


def form() -> html.Div:
    from workbench.tasks import TASKS

    return html.Div(
        [
            html.Div("launch a discovery job on the model chosen above", style=SMALL),
            _dropdown("method", ["acdc", "eap", "eap-ig"], 100),
            _number("threshold", "threshold", "any"),
            _number("top_k", "top-k (eap)"),
            _dropdown("ablation", list(launch.ABLATIONS), 110),
            _dropdown("metric", ["kl", "logit_diff"], 110),
            _dropdown("task", [launch.OWN_TASK, *TASKS], 160),
            _number("n_prompts", "prompts"),
            _number("seed", "seed"),
            _number("batch_size", "batch (acdc)"),
            _number("steps", "steps (eap-ig)"),
            _dropdown("ig_over", ["inputs", "activations"], 120),
            html.Button("launch", id="circuits-launch", n_clicks=0),
            html.Div(id="circuits-message", style={"marginTop": "6px", "color": "crimson"}),
        ]
    )


def layout() -> html.Div:
    figure: dcc.Graph.Config = {"displaylogo": False}
    return html.Div(
        [
            dcc.Interval(id="circuits-poll", interval=POLL_MS),
            dcc.Store(id="circuits-launched"),  # the worker this browser launched last
            dcc.Store(id="circuits-select"),  # a job to choose in the list
            dcc.Store(id="circuits-seen"),  # [id, status, done] of the chosen job
            form(),
            html.H4("jobs", style={"marginBottom": "4px"}),
            html.Div(id="circuits-table"),
            html.Div(id="circuits-status", style={"color": "crimson", **SMALL}),
            html.Div(
                [
                    dcc.Dropdown(
                        id="circuits-job",
                        placeholder="choose a job",
                        style={"width": "320px", "display": "inline-block"},
                    ),
                    html.Button("cancel", id="circuits-cancel", n_clicks=0),
                    html.Button("resume", id="circuits-resume", n_clicks=0),
                ],
                style={"marginTop": "8px"},
            ),
            html.Div(id="circuits-view-message", style={"marginTop": "6px"}),
            html.Div("threshold (log10 of the edge score; far left: 0)", style=SMALL),
            dcc.Slider(id="circuits-slider", min=-6, max=0, step=0.01, value=-2),
            dcc.Graph(id="circuits-graph", config=figure),
            html.Div(
                [
                    dcc.Graph(id=f"circuits-{name}", config=figure, style=THIRD)
                    for name in ("histogram", "faithfulness", "roc")
                ],
                style={"display": "flex"},
            ),
        ]
    )


# ----- the chosen job's circuit ----------------------------------------------------------------


def chosen(context: AppContext, job_id: object) -> tuple[Job, Circuit | None]:
    """The job `job_id` names (from the browser: looked up in the store) and its circuit
    (None while it has scored no edge)."""
    job = find_job(read_jobs(context.store), job_id)
    return job, job_circuit(context.store, job)


def slider_range(job: Job, circuit: Circuit) -> tuple[float, float, float]:
    """(min, max, the job's own position) of the threshold slider, in log10 of the score;
    the minimum stands for a threshold of 0."""
    positive = [s for s in circuit.scores.values() if s > 0]
    low = math.floor(math.log10(min(positive))) - 1 if positive else -6
    high = math.ceil(math.log10(max(positive))) if positive else 0
    own = circuit_threshold(job, circuit)
    if own is None or own <= 0:
        return low, high, low
    spot = math.log10(own)
    return min(low, math.floor(spot) - 1), max(high, math.ceil(spot)), spot


def threshold_at(position: float, low: float) -> float:
    return 0.0 if position <= low else 10.0**position


def circuit_view(context: AppContext, job_id: object, position: object):
    """The chosen job's graph (its own circuit when the slider is at the job's threshold,
    else the edges scoring at least the slider's threshold), histogram, faithfulness, ROC
    and a line on the job."""
    job, circuit = chosen(context, job_id)
    if circuit is None:
        waiting = note(f"job {job.id} has scored no edge yet")
        return waiting, waiting, waiting, waiting, describe_job(context, job, None)
    low, high, own = slider_range(job, circuit)
    at = own if not isinstance(position, int | float) or isinstance(position, bool) else position
    at = min(max(at, low), high + 1) if math.isfinite(at) else own
    exact = abs(at - own) < 1e-9 and job.result is not None
    threshold = threshold_at(at, low)
    graph = circuit_graph(circuit, None if exact else threshold)
    histogram = score_histogram(circuit.scores, threshold)
    store_curves = job_curves(context.store, job.id)
    curve = stored_faithfulness(store_curves.get("faithfulness", []))
    kept = len(circuit.edges) if job.result is not None else None
    faithful = (
        faithfulness_curve(curve, kept) if curve else note("faithfulness: when the job is done")
    )
    roc = job_roc(context.registry, job, circuit)
    ground = roc_figure(roc) if roc else note("ROC: for a finished job on a compiled RASP program")
    return graph, histogram, faithful, ground, describe_job(context, job, threshold)


def note(text: str) -> go.Figure:
    return placeholder(text, height=320, color="#555")


def describe_job(context: AppContext, job: Job, threshold: float | None) -> str:
    model = model_label(context.registry, job.settings.get("model"))
    if job.status == "done":
        return f"job {job.id}: {job.settings.get('method')} on {model}, done"
    if job.status == "failed":
        error = (job.error or "").replace(str(job.settings.get("model")), model)
        error = error.replace(str(context.store), "the job store")
        return f"job {job.id} failed: {error[:400]} (resume runs it again)"
    so_far = f"job {job.id} is {job.status}: {job.done}/{job.total} edges scored so far"
    if threshold is None:
        return so_far
    return f"{so_far}; the graph shows those scoring ≥ {threshold:.3g}"


def clicked_head(context: AppContext, job_id: object, click: object, shown: object) -> tuple:
    """The outputs that open the clicked head of the job's model in the attention view
    (`shown`: the model the page shows now)."""
    job = find_job(read_jobs(context.store), job_id)
    name = offered_name(context.registry, job.settings.get("model"))
    if name is None:
        raise InputError(f"job {job.id}'s model is not offered by this server")
    try:
        node = click["points"][0]["customdata"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise PreventUpdate from None
    found = head_of(node) if isinstance(node, str) else None
    if found is None:
        raise PreventUpdate  # an edge, the embedding, an MLP or the logits
    return links.open_attention(context.registry.names, shown, name, found)


# ----- callbacks -------------------------------------------------------------------------------


def register(app: dash.Dash, context: AppContext) -> None:
    keys = [f"circuits-{k}" for k in launch.FORM]

    @app.callback(
        Output("circuits-table", "children"),
        Output("circuits-job", "options"),
        Output("circuits-seen", "data"),
        Output("circuits-select", "data"),
        Output("circuits-launched", "data", allow_duplicate=True),
        Output("circuits-status", "children"),
        Input("circuits-poll", "n_intervals"),
        Input("circuits-job", "value"),
        Input("page", "value"),
        State("circuits-seen", "data"),
        State("circuits-launched", "data"),
        prevent_initial_call="initial_duplicate",
    )
    def on_poll(_, picked, page, seen, launched):
        only_shown(page, NAME)

        def compute():
            rows, notes = table_rows(context)
            ids = [r.id for r in rows if r.id != "(starting)"]
            options = [
                {"label": f"{r.id} ({r.method} on {r.model})", "value": r.id}
                for r in rows
                if r.id != "(starting)"
            ]
            select = forget = dash.no_update
            worker = next((w for w in context.workers.workers() if w.key == launched), None)
            if worker is not None and worker.job is not None:
                select, forget = worker.job, None  # the job this browser launched is listed
            elif picked not in ids and ids:
                select = ids[0]  # the newest
            row = next((r for r in rows if r.id == picked), None)
            now = [row.id, row.status, row.done] if row else None
            fresh = now if now != seen else dash.no_update
            return table(rows), options, fresh, select, forget, " · ".join(notes)

        keep = [lambda _: dash.no_update] * 4
        return answer(compute, lambda m: html.Div(m, style={"color": "crimson"}), *keep)

    @app.callback(
        Output("circuits-job", "value"),
        Input("circuits-select", "data"),
        Input("page", "value"),
        prevent_initial_call=True,
    )
    def on_select(job_id, page):
        only_shown(page, NAME)
        if not isinstance(job_id, str):
            raise PreventUpdate
        return job_id

    @app.callback(
        Output("circuits-launched", "data"),
        Output("circuits-message", "children"),
        Input("circuits-launch", "n_clicks"),
        Input("page", "value"),
        State("model", "value"),
        *(State(k, "value") for k in keys),
        prevent_initial_call=True,
    )
    def on_launch(clicks, page, model, *values):
        only_shown(page, NAME)
        if dash.ctx.triggered_id != "circuits-launch" or not clicks:
            raise PreventUpdate

        def compute():
            key = launch.launch(context, model, dict(zip(launch.FORM, values, strict=True)))
            return key, _done("started: the job is listed once its worker has loaded the model")

        return answer(compute, lambda _: dash.no_update)

    @app.callback(
        Output("circuits-launched", "data", allow_duplicate=True),
        Output("circuits-message", "children", allow_duplicate=True),
        Input("circuits-cancel", "n_clicks"),
        Input("circuits-resume", "n_clicks"),
        Input("page", "value"),
        State("circuits-job", "value"),
        prevent_initial_call=True,
    )
    def on_job_button(cancels, resumes, page, job_id):
        only_shown(page, NAME)
        pressed = dash.ctx.triggered_id
        if pressed not in ("circuits-cancel", "circuits-resume"):
            raise PreventUpdate

        def compute():
            if pressed == "circuits-cancel":
                return dash.no_update, _done(launch.cancel(context, job_id))
            return launch.resume(context, job_id), _done(f"resuming job {job_id}")

        return answer(compute, lambda _: dash.no_update)

    @app.callback(
        Output("circuits-slider", "min"),
        Output("circuits-slider", "max"),
        Output("circuits-slider", "marks"),
        Output("circuits-slider", "value"),
        Input("circuits-seen", "data"),
        Input("page", "value"),
    )
    def on_seen(seen, page):
        only_shown(page, NAME)
        if not isinstance(seen, list) or not seen:
            raise PreventUpdate
        try:
            job, circuit = chosen(context, seen[0])
        except InputError:
            raise PreventUpdate from None  # the view's message says why
        if circuit is None:
            raise PreventUpdate
        low, high, own = slider_range(job, circuit)
        marks = {low: "0", **{k: f"1e{k}" for k in range(int(low) + 1, int(high) + 1)}}
        return low, high, marks, own

    @app.callback(
        Output("circuits-graph", "figure"),
        Output("circuits-histogram", "figure"),
        Output("circuits-faithfulness", "figure"),
        Output("circuits-roc", "figure"),
        Output("circuits-view-message", "children"),
        Input("circuits-slider", "value"),
        Input("circuits-seen", "data"),
        Input("page", "value"),
    )
    def on_view(position, seen, page):
        only_shown(page, NAME)
        if not isinstance(seen, list) or not seen:
            raise PreventUpdate
        return answer(lambda: circuit_view(context, seen[0], position), *[error_figure] * 4)

    @app.callback(
        *links.outputs(),
        Output("circuits-view-message", "children", allow_duplicate=True),
        Input("circuits-graph", "clickData"),
        Input("page", "value"),
        State("circuits-job", "value"),
        State("model", "value"),
        prevent_initial_call=True,
    )
    def on_click(click, page, job_id, shown):
        only_shown(page, NAME)
        if dash.ctx.triggered_id != "circuits-graph":
            raise PreventUpdate
        keep = [lambda _: dash.no_update] * 6
        return answer(lambda: (*clicked_head(context, job_id, click, shown), ""), *keep)


def _done(text: str) -> html.Span:
    """What went well, in the message line (errors are its plain red text)."""
    return html.Span(text, style={"color": "#333"})
