"""The RASP page: a program (a shipped one chosen by name, or typed text), its values per SOp
on an input (the interpreter), its operations as a graph and the layers and heads it needs;
compiled in the background (cancel, time limit), its compiled layout, the residual stream per
sublayer labelled `sop:value`, its ground-truth circuit; ACDC on the compiled model in the
background, with its ROC against the ground truth. The compiled model is offered in the model
list, and opens in the attention page (the button, or a click on a head of the layout)."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from app.background import RunState
from app.compiled import (
    MAX_INPUT,
    MAX_LEN,
    SHIPPED,
    AcdcResult,
    CompiledPrograms,
    Spec,
    checked_prompts,
    checked_threshold,
    defaults,
    layout_of,
    parsed,
    run_program,
    tokens,
)
from app.context import AppContext
from app.figures.rasp import (
    circuit_graph,
    ground_truth_figure,
    head_table,
    labels_layout,
    layer_layout,
    op_graph,
    residual_table,
    roc_curve,
    values_table,
)
from app.models import ModelRegistry
from app.pages import links
from app.pages.controls import field, only_shown
from app.respond import answer, error_figure
from app.views.attention import clicked_head
from circuits.graph import build_graph
from rasp.readout import rasp_labels, residual_by_layer
from workbench.errors import InputError

NAME = "rasp"
TITLE = "RASP"
FIRST = "reverse"
POLL_MS = 500


def program_view(source: object, text: object, causal: object):
    """The values of every SOp on the input, the operations graph, and the layers, heads
    and MLPs the program needs (the compiler's placement, before compiling)."""
    program = parsed(source)
    xs = tokens(text, "input", MAX_INPUT)
    run = run_program(program, xs, causal is True)
    graph, needs = layout_of(program)
    heads = [list(h) for h in needs.heads]
    paper = needs.paper
    title = (
        f"the {needs.layers} layers the program needs compiled (the paper's count: "
        f"{paper.layers} attention layers, at most {paper.max_heads} heads)"
    )
    planned = layer_layout(heads, [list(m) for m in needs.mlps], title)
    return values_table(run), op_graph(graph), planned


def compiled_view(programs: CompiledPrograms, name: object, text: object):
    """The compiled model's layout, its heads, its residual stream on the input decoded to
    `sop:value`, its ground-truth circuit, and a line saying what it is."""
    compiled = programs.get(name)
    ckpt = compiled.checkpoint
    labels = rasp_labels(ckpt)
    xs = tokens(text, "input", MAX_INPUT)
    try:
        ids = compiled.program.encode([xs])[0].tolist()
    except ValueError as error:
        raise InputError(f"the compiled model cannot read this input: {error}") from None
    with programs.registry.running(compiled.name):
        readout = residual_by_layer(ckpt.model, ids, labels)
    config = ckpt.model.config
    shown = layer_layout(
        *labels_layout(labels), f"{compiled.name}: layers and heads (click a head to open it)"
    )
    title = f"residual stream of {labels.program} on {''.join(map(str, xs))!r}, decoded"
    truth = ground_truth_figure(compiled.program)
    note = (
        f"compiled {compiled.name}: {config.n_layers} layers, {config.n_heads} heads, d_model "
        f"{config.d_model}, validated against the interpreter; it is in the model list"
    )
    return shown, head_table(labels), residual_table(readout, title), truth, note


def acdc_view(result: AcdcResult, registry: ModelRegistry):
    config = registry.checkpoint(result.model).model.config
    title = (
        f"ACDC (threshold {result.threshold:g}) against the ground truth: "
        f"{len(result.edges)} edges kept"
    )
    found = circuit_graph(build_graph(config), result.truth, result.edges, title)
    return roc_curve(result.roc), found


def status_line(state: RunState, what: str) -> str:
    """One line for the page: `what` and where its run stands."""
    count = f" {state.done}/{state.total}" if state.total else ""
    match state.status:
        case "running":
            return f"{what}:{count} running for {state.seconds:.1f} s"
        case "done":
            return f"{what}: done in {state.seconds:.1f} s"
        case "timed out":
            return f"{what}: stopped after its limit of {state.limit_s:.0f} s"
        case "failed":
            return f"{what} failed: {state.error}"
    return f"{what}: {state.status}"


def layout() -> html.Div:
    vocab, max_len = defaults(FIRST)
    number = {"type": "number", "debounce": True, "style": {"width": "80px"}}
    return html.Div(
        style={"marginTop": "8px"},
        children=[
            dcc.Store(id="rasp-compile-task"),
            dcc.Store(id="rasp-model"),  # the compiled model's name in the registry
            dcc.Store(id="rasp-acdc-task"),
            dcc.Store(id="rasp-acdc-done"),
            dcc.Interval(id="rasp-poll", interval=POLL_MS, disabled=True),
            html.Div(
                [
                    field(
                        "program",
                        dcc.Dropdown(
                            list(SHIPPED),
                            FIRST,
                            id="rasp-program",
                            clearable=False,
                            style={"width": "200px", "display": "inline-block"},
                        ),
                    ),
                    html.Span("or edit the text (the last statement is the output)"),
                ]
            ),
            dcc.Textarea(
                id="rasp-source",
                value=SHIPPED.get(FIRST, ""),
                style={"width": "90%", "height": "160px", "fontFamily": "monospace"},
            ),
            html.Div(
                [
                    field("input", dcc.Input(id="rasp-input", value="abc", debounce=True)),
                    html.Button("run", id="rasp-run", n_clicks=0),
                    html.Span(" ", style={"marginRight": "24px"}),
                    field("vocabulary", dcc.Input(id="rasp-vocab", value=vocab, debounce=True)),
                    field(
                        f"max length (1-{MAX_LEN})",
                        dcc.Input(id="rasp-max-len", value=max_len, min=1, max=MAX_LEN, **number),
                    ),
                    dcc.Checklist(["causal"], [], id="rasp-causal", inline=True),
                    html.Button("compile", id="rasp-compile", n_clicks=0),
                    html.Button("cancel", id="rasp-compile-cancel", n_clicks=0),
                    html.Button("open in the attention page", id="rasp-open", n_clicks=0),
                ],
                style={"marginTop": "8px", "display": "flex", "gap": "8px", "flexWrap": "wrap"},
            ),
            html.Div(id="rasp-status", style={"color": "#555", "marginTop": "4px"}),
            html.Div(id="rasp-error", style={"color": "crimson"}),
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[
                    dcc.Loading(dcc.Graph(id="rasp-values")),
                    dcc.Loading(dcc.Graph(id="rasp-ops")),
                    dcc.Graph(id="rasp-plan"),
                ],
            ),
            html.H4("compiled model"),
            html.Div(id="rasp-note", style={"color": "#555"}),
            html.Div(id="rasp-compiled-error", style={"color": "crimson"}),
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[
                    dcc.Graph(id="rasp-layout"),
                    dcc.Graph(id="rasp-heads"),
                    dcc.Graph(id="rasp-residual"),
                    dcc.Graph(id="rasp-truth"),
                ],
            ),
            html.H4("ACDC on the compiled model"),
            html.Div(
                [
                    field("threshold", dcc.Input(id="rasp-threshold", value=0.001, **number)),
                    field(
                        "prompts per length",
                        dcc.Input(id="rasp-prompts", value=4, min=1, **number),
                    ),
                    html.Button("run ACDC", id="rasp-acdc", n_clicks=0),
                    html.Button("cancel", id="rasp-acdc-cancel", n_clicks=0),
                ],
                style={"display": "flex", "gap": "8px", "flexWrap": "wrap"},
            ),
            html.Div(id="rasp-acdc-status", style={"color": "#555", "marginTop": "4px"}),
            html.Div(id="rasp-acdc-error", style={"color": "crimson"}),
            html.Div(
                style={"display": "flex", "flexWrap": "wrap", "gap": "8px"},
                children=[dcc.Graph(id="rasp-roc"), dcc.Graph(id="rasp-found")],
            ),
        ],
    )


def register(app: dash.Dash, context: AppContext) -> None:
    registry = context.registry
    programs = CompiledPrograms(registry)
    app.compiled = programs  # type: ignore[attr-defined]  # for tests and notebooks

    @app.callback(
        Output("rasp-source", "value"),
        Output("rasp-vocab", "value"),
        Output("rasp-max-len", "value"),
        Output("rasp-input", "value", allow_duplicate=True),
        Output("rasp-error", "children", allow_duplicate=True),
        Input("rasp-program", "value"),
        prevent_initial_call=True,
    )
    def on_program(name: object):
        def compute():
            if not isinstance(name, str) or name not in SHIPPED:
                raise InputError(f"no shipped program {str(name)[:40]!r}: choose one of the list")
            vocab, max_len = defaults(name)
            return SHIPPED[name], vocab, max_len, vocab[:max_len], ""  # an input it reads

        return answer(compute, *[lambda _: dash.no_update] * 4)

    @app.callback(
        Output("rasp-values", "figure"),
        Output("rasp-ops", "figure"),
        Output("rasp-plan", "figure"),
        Output("rasp-error", "children"),
        Input("rasp-run", "n_clicks"),
        Input("rasp-input", "value"),
        Input("page", "value"),
        State("rasp-source", "value"),
        State("rasp-causal", "value"),
    )
    def on_run(_, text, page, source, causal):
        only_shown(page, NAME)
        on = isinstance(causal, list) and "causal" in causal
        return answer(lambda: (*program_view(source, text, on), ""), *[error_figure] * 3)

    @app.callback(
        Output("rasp-compile-task", "data"),
        Output("rasp-poll", "disabled", allow_duplicate=True),
        Output("rasp-status", "children", allow_duplicate=True),
        Output("rasp-error", "children", allow_duplicate=True),
        Input("rasp-compile", "n_clicks"),
        State("page", "value"),
        State("rasp-source", "value"),
        State("rasp-vocab", "value"),
        State("rasp-max-len", "value"),
        State("rasp-causal", "value"),
        prevent_initial_call=True,
    )
    def on_compile(_, page, source, vocab, max_len, causal):
        only_shown(page, NAME)
        on = isinstance(causal, list) and "causal" in causal

        def compute():
            run = programs.start(Spec.of(source, vocab, max_len, on))
            return run.id, False, status_line(run.state(), "compiling"), ""

        no = [lambda _: dash.no_update] * 3
        return answer(compute, *no)

    @app.callback(
        Output("rasp-error", "children", allow_duplicate=True),
        Input("rasp-compile-cancel", "n_clicks"),
        Input("rasp-acdc-cancel", "n_clicks"),
        State("rasp-compile-task", "data"),
        State("rasp-acdc-task", "data"),
        prevent_initial_call=True,
    )
    def on_cancel(_, __, compiling, acdc):
        if dash.ctx.triggered_id == "rasp-compile-cancel":
            run = programs.compiles.find(compiling)
        else:
            run = programs.acdcs.find(acdc)
        if run is None:
            raise dash.exceptions.PreventUpdate  # nothing of this page's is running
        run.cancel()
        return ""

    @app.callback(
        Output("rasp-status", "children"),
        Output("rasp-acdc-status", "children"),
        Output("rasp-model", "data"),
        Output("rasp-acdc-done", "data"),
        Output("rasp-poll", "disabled"),
        Input("rasp-poll", "n_intervals"),
        State("rasp-compile-task", "data"),
        State("rasp-acdc-task", "data"),
        State("rasp-model", "data"),
        State("rasp-acdc-done", "data"),
    )
    def on_poll(_, compiling, acdc, model, done):
        compile_run, acdc_run = programs.compiles.find(compiling), programs.acdcs.find(acdc)
        status, acdc_status, running = dash.no_update, dash.no_update, False
        if compile_run is not None:
            state = compile_run.state()
            status, running = status_line(state, "compiling"), state.running
            if state.status == "done" and state.result != model:
                model = state.result
        if acdc_run is not None:
            state = acdc_run.state()
            acdc_status = status_line(state, "ACDC (edges tried)")
            running = running or state.running
            if state.status == "done":
                done = acdc_run.id
        return status, acdc_status, model, done, not running

    @app.callback(
        Output("rasp-layout", "figure"),
        Output("rasp-heads", "figure"),
        Output("rasp-residual", "figure"),
        Output("rasp-truth", "figure"),
        Output("rasp-note", "children"),
        Output("rasp-compiled-error", "children"),
        Input("rasp-model", "data"),
        Input("rasp-input", "value"),
        Input("page", "value"),
        prevent_initial_call=True,
    )
    def on_compiled(name, text, page):
        only_shown(page, NAME)
        if name is None:
            raise dash.exceptions.PreventUpdate  # nothing compiled yet
        return answer(
            lambda: (*compiled_view(programs, name, text), ""),
            lambda _: dash.no_update,
            *[error_figure] * 3,
            lambda _: "",
        )

    @app.callback(
        Output("rasp-acdc-task", "data"),
        Output("rasp-poll", "disabled", allow_duplicate=True),
        Output("rasp-acdc-status", "children", allow_duplicate=True),
        Output("rasp-acdc-error", "children"),
        Input("rasp-acdc", "n_clicks"),
        State("page", "value"),
        State("rasp-model", "data"),
        State("rasp-threshold", "value"),
        State("rasp-prompts", "value"),
        prevent_initial_call=True,
    )
    def on_acdc(_, page, name, threshold, n_prompts):
        only_shown(page, NAME)

        def compute():
            if name is None:
                raise InputError("compile the program first: ACDC runs on the compiled model")
            compiled = programs.get(name)
            run = programs.start_acdc(
                compiled, checked_threshold(threshold), checked_prompts(n_prompts)
            )
            return run.id, False, status_line(run.state(), "ACDC"), ""

        return answer(compute, *[lambda _: dash.no_update] * 3)

    @app.callback(
        Output("rasp-roc", "figure"),
        Output("rasp-found", "figure"),
        Output("rasp-acdc-error", "children", allow_duplicate=True),
        Input("rasp-acdc-done", "data"),
        Input("page", "value"),
        prevent_initial_call=True,
    )
    def on_acdc_done(run_id, page):
        only_shown(page, NAME)
        if run_id is None:
            raise dash.exceptions.PreventUpdate

        def compute():
            state = programs.acdcs.get(run_id).state()
            if state.status != "done":
                raise InputError(f"the ACDC task is {state.status}, not done")
            return *acdc_view(state.result, registry), ""

        return answer(compute, error_figure, error_figure)

    @app.callback(
        *links.outputs(),
        Output("rasp-error", "children", allow_duplicate=True),
        Input("rasp-open", "n_clicks"),
        Input("rasp-layout", "clickData"),
        State("rasp-model", "data"),
        State("model", "value"),
        State("page", "value"),
        prevent_initial_call=True,
    )
    def on_open(_, click, name, current, page):
        only_shown(page, NAME)

        def compute():
            if name is None:
                raise InputError("compile the program first: the attention page opens its model")
            compiled = programs.get(name)
            head = None
            if dash.ctx.triggered_id == "rasp-layout":
                config = compiled.checkpoint.model.config
                head = clicked_head(click, config.n_layers, config.n_heads)
            return *links.open_attention(registry.names, current, compiled.name, head), ""

        return answer(compute, *[lambda _: dash.no_update] * 6)
