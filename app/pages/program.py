"""The learned program page: a frozen Transformer Program (`workbench decompile RUN --freeze
DIR`, served with `workbench app --model DIR`) shown as its program beside the model. The
listing (what each head and MLP reads, with its predicate or table), and on the page's input
every variable's value by the program (numpy, `rasp.learned.program`) beside the value the
model's residual stream holds in that variable's slot, which key each closest-match head
reads (the program's choice, the model's attention), and the output. The program is read
back from the checkpoint (its structure in the metadata, its tables and readout in the
weights), so the two routes are independent."""

from __future__ import annotations

import dash
import numpy as np
from dash import Input, Output, html
from torch import Tensor

from app.context import AppContext
from app.figures.learned import Row, program_beside_model
from app.models import ModelRegistry
from app.pages.controls import only_shown
from app.respond import answer, error_figure
from app.run import collect, prepare
from rasp.learned.decompile import describe
from rasp.learned.freeze import PROGRAM_META, Slots, thawed
from rasp.learned.program import Head, LearnedProgram, closest_key, matches
from rasp.learned.python import value_kinds
from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.errors import CheckpointError, InputError

NAME = "program"
TITLE = "learned program"


def learned(ckpt: Checkpoint, model_name: object) -> tuple[LearnedProgram, list[str], list[str]]:
    """The program of a frozen learned program, its words and its tags."""
    meta = ckpt.meta.get(PROGRAM_META)
    run = ckpt.meta.get("learned_program")
    words = run.get("words") if isinstance(run, dict) else None
    tags = run.get("tags") if isinstance(run, dict) else None
    if not isinstance(meta, dict) or not isinstance(words, list) or not isinstance(tags, list):
        raise InputError(
            f"{model_name} is not a frozen learned program: freeze one with `workbench "
            "decompile RUN --freeze DIR` and serve it with `workbench app --model DIR`"
        )
    program = thawed(ckpt.model, meta)
    if len(words) != ckpt.model.config.d_vocab or len(tags) != ckpt.model.config.d_vocab_out:
        raise CheckpointError(f"{model_name}'s words and tags do not fit its model")
    return program, [str(w) for w in words], [str(t) for t in tags]


def program_view(registry: ModelRegistry, model_name: object, prompt: object):
    """The listing, and the table of the program beside the model on the page's input."""
    ckpt = registry.checkpoint(model_name)
    program, words, tags = learned(ckpt, model_name)
    prepared = prepare(ckpt, prompt)
    ids = np.array([prepared.token_ids()])
    if 0 in ids:
        raise InputError(f"{words[0]!r} is padding: type the input without it")
    n_layers = len(program.layers)

    def hooks(_) -> list[str]:
        return [
            names.resid_post(n_layers - 1),
            *map(names.attn_pattern, range(n_layers)),
            names.LOGITS,
        ]

    acts = collect(registry, model_name, prepared, hooks)
    rows = _rows(program, words, tags, ids, acts, n_layers)
    positions = [f"{i}:{w}" for i, w in enumerate(prepared.labels)]
    differ = sum(r.program != r.model for r in rows)
    title = (
        f"{model_name}: the program (numpy) beside the model (its residual stream and "
        f"attention); {'equal on every row' if not differ else f'{differ} rows differ'}"
    )
    listing = describe(program, tuple(words))
    return html.Pre(listing), program_beside_model(rows, positions, title)


def _rows(
    program: LearnedProgram,
    words: list[str],
    tags: list[str],
    ids: np.ndarray,
    acts: dict[str, Tensor],
    n_layers: int,
) -> list[Row]:
    kinds, slots, k = value_kinds(program), Slots(program), program.d_var
    cat, num = program.variables(ids)
    stream = acts[names.resid_post(n_layers - 1)].double().numpy()  # [pos, d_model]

    def shown(variable: str, index: int) -> str:
        if index < 0:
            return "—"
        if kinds[variable] == "token":
            return words[index] if 0 <= index < len(words) else f"#{index}"
        return str(index)

    how = _operations(program)
    rows = []
    for name, values in cat.items():
        slot = stream[:, slots.cat[name] : slots.cat[name] + k]
        held = np.where(slot.max(-1) > 0.5, slot.argmax(-1), -1)  # -1: the slot holds no value
        rows.append(
            Row(
                name,
                how.get(name, "the input"),
                _all(shown, name, values[0]),
                _all(shown, name, held),
            )
        )
    for name, values in num.items():
        held = np.rint(stream[:, slots.num[name]]).astype(int)
        rows.append(
            Row(
                name,
                how.get(name, "1 everywhere"),
                tuple(map(str, values[0])),
                tuple(map(str, held)),
            )
        )
    rows += _attended(program, cat, acts)
    mine = program.run(ids)[0]
    theirs = acts[names.LOGITS].argmax(-1).tolist()
    rows.append(
        Row("output", "readout", tuple(tags[i] for i in mine), tuple(tags[i] for i in theirs))
    )
    return rows


def _all(shown, name: str, values) -> tuple[str, ...]:
    return tuple(shown(name, int(v)) for v in values)


def _attended(program: LearnedProgram, cat: dict, acts: dict[str, Tensor]) -> list[Row]:
    """For each closest-match head, the key position each query reads."""
    rows = []
    mask = program.attention_mask(cat["tokens"])
    for index, layer in enumerate(program.layers):
        pattern = acts[names.attn_pattern(index)].numpy()  # [head, query, key]
        for h, head in enumerate(layer.cat_heads):
            chosen = closest_key(matches(head, cat, mask))[0]
            held = pattern[h].argmax(-1)
            rows.append(
                Row(
                    f"{head.name} reads",
                    "key position",
                    tuple(map(str, chosen)),
                    tuple(map(str, held)),
                )
            )
    return rows


def _operations(program: LearnedProgram) -> dict[str, str]:
    def select(head: Head, kind: str) -> str:
        return f"{kind}({head.key}, {head.query})"

    how = {}
    for layer in program.layers:
        for head in layer.cat_heads:
            how[head.name] = f"{select(head, 'select_closest')} → {head.value}"
        for head in layer.num_heads:
            how[head.name] = f"sum of {head.value} over {select(head, 'select')}"
        for table in (*layer.cat_mlps, *layer.num_mlps):
            how[table.name] = f"table({table.inputs[0]}, {table.inputs[1]})"
    return how


def layout() -> html.Div:
    from dash import dcc

    return html.Div(
        style={"marginTop": "8px"},
        children=[
            html.Div(
                "a frozen learned program (workbench decompile RUN --freeze DIR; workbench app "
                "--model DIR): type its input words, BOS first",
                style={"color": "#555"},
            ),
            html.Div(id="program-error", style={"color": "crimson"}),
            dcc.Loading(dcc.Graph(id="program-table")),
            html.Div(id="program-listing", style={"fontFamily": "monospace"}),
        ],
    )


def register(app: dash.Dash, context: AppContext) -> None:
    registry = context.registry

    @app.callback(
        Output("program-listing", "children"),
        Output("program-table", "figure"),
        Output("program-error", "children"),
        Input("run", "n_clicks"),
        Input("prompt", "value"),
        Input("model", "value"),
        Input("page", "value"),
    )
    def on_input(_, prompt, model_name, page):
        only_shown(page, NAME)
        return answer(
            lambda: (*program_view(registry, model_name, prompt), ""),
            lambda _: "",
            error_figure,
        )
