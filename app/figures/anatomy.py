"""The anatomy of a model: a block diagram of its wiring drawn from the config's hook schema
(`workbench.schema`), every hook point a clickable node, and the values one hook point took
on an input.

Each block is a row: the residual stream in the middle, attention above it, the MLP above it
after attention (sequential) or below it beside attention (parallel: both read the same
stream); a post-norm block's norms sit on the stream; a dual-stream block's token and context
streams sit just under the sum its sublayers read. A block's frame is coloured by the block
whose weights it runs (weight ties and loops), a DenseFormer's depth-weighted averages are
drawn as their own matrix beside the blocks, and the attention frame says how many key/value
heads the query heads share (GQA/MQA) and which gates there are."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from app.figures.attention import matrix_scale
from workbench.config import KVSharing, ModelConfig, NormPlacement, Wiring
from workbench.schema import HookSpec, hook_schema


class _Cell(TypedDict, total=False):
    """The subplot a trace goes in (none: a figure without subplots)."""

    row: int
    col: int


ROW = 4.0  # vertical distance between two rows (a block, the embedding, the output)
LANES = {"stream": 0.0, "attn": 1.2, "mlp": 1.2, "mlp_below": -1.2, "token": -0.8, "context": -1.5}
COLOURS = {
    "stream": "#7f7f7f",
    "attn": "#1f77b4",
    "mlp": "#ff7f0e",
    "norm": "#9467bd",
    "gate": "#d62728",
    "token": "#2ca02c",
    "context": "#2ca02c",
    "input": "#17becf",
}
GATES = ("gate", "forget_gate", "decay", "beta", "pre_linear")
TIES = ("#e8f1fa", "#fdeedc", "#e6f4e6", "#f6e6f6", "#fbf6dc", "#e0f7f7", "#fde8e8", "#ececec")
MAX_ROWS, MAX_COLUMNS = 512, 1024  # of an activation's heatmap
LEFT = -3.2  # where the row labels start, left of the rows


@dataclass(frozen=True)
class Node:
    """A hook point placed in the diagram."""

    spec: HookSpec
    x: float
    y: float
    lane: str
    row: int  # -1: the embedding, 0..n_layers - 1: a block, n_layers: the output


def short(name: str) -> str:
    """A hook point's name within its block, without `hook_`: `attn.q`, `resid_mid`."""
    parts = name.split(".")
    if parts[0] == "blocks":
        parts = parts[2:]
    return ".".join(p.removeprefix("hook_") for p in parts)


def _lane(cfg: ModelConfig, spec: HookSpec) -> str:
    local = short(spec.name)
    head = local.split(".")[0]
    post = cfg.norm_placement is NormPlacement.POST
    if local in ("token_stream", "context_stream"):
        return local.removesuffix("_stream")
    if (head == "ln1" and not post) or head == "attn" or local == "attn_out":
        return "attn"
    if (head == "ln2" and not post) or head == "mlp" or local == "mlp_out":
        return "mlp_below" if cfg.wiring is Wiring.PARALLEL else "mlp"
    return "stream"


def place(cfg: ModelConfig) -> tuple[list[Node], list[tuple[str, str]]]:
    """Every hook point of the schema placed in its row and lane, and the edges between them
    (sender, receiver): a sublayer branches off the stream and its output merges back, where
    the stream also continues past it (the residual connection)."""
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    row, x = -1, 0.0
    last: dict[str, Node] = {}  # the last node of each lane in this row
    open_lanes: list[str] = []  # lanes branched off the stream since its last node
    for spec in hook_schema(cfg):
        block = spec.name.split(".")[1] if spec.name.startswith("blocks.") else None
        if block is not None and int(block) != row:
            row, x, last, open_lanes = int(block), 0.0, {}, []
        elif spec.name.startswith(("ln_final", "mlm", "hook_logits")) and row != cfg.n_layers:
            row, x, last, open_lanes = cfg.n_layers, 0.0, {}, []
        lane = "input" if spec.name == "hook_pos_embed" else _lane(cfg, spec)
        if lane == "mlp_below" and "mlp_below" not in open_lanes:
            x = last["stream"].x + 1 if "stream" in last else x  # beside attention
        if lane == "stream":
            x = max([x, *(last[o].x + 1 for o in open_lanes if o in last)])
        y = -(row + 1) * ROW + LANES.get(lane, 1.2)
        node = Node(spec, x, y, lane, row)
        if lane in ("token", "context"):  # dual-stream: a part of the sum, read out
            edges.append((last["attn" if lane == "token" else "mlp"].spec.name, spec.name))
        elif lane == "stream":
            edges += [(last[o].spec.name, spec.name) for o in open_lanes if o in last]
            if "stream" in last:
                edges.append((last["stream"].spec.name, spec.name))
            open_lanes = []
            last["stream"] = node
        elif lane == "input":
            open_lanes.append(lane)  # the positions are added to the embedding
        else:
            if lane in last:
                edges.append((last[lane].spec.name, spec.name))
            elif "stream" in last:
                edges.append((last["stream"].spec.name, spec.name))
            if lane not in open_lanes:
                open_lanes.append(lane)
        last[lane] = node
        nodes.append(node)
        x += 1
    return nodes, edges


def summary(cfg: ModelConfig) -> str:
    """The model's wiring in one line."""
    parts = [
        f"{cfg.n_layers} blocks, {cfg.wiring.value} wiring, "
        + (f"{cfg.norm_placement.value}-norm ({cfg.norm.value})" if cfg.has_norm else "no norms"),
        f"d_model {cfg.d_model}",
        _attention_text(cfg),
        f"MLP {cfg.mlp.KIND}" + (f" (d_mlp {cfg.d_mlp})" if cfg.has_mlp else ""),
        f"positions: {cfg.pos.KIND}",
    ]
    if cfg.layers:
        parts.append(f"per-layer changes: {[o.to_json() for o in cfg.layers]}")
    if cfg.weight_ties:
        parts.append(f"weight ties {list(cfg.weight_ties)} (block l runs block ties[l]'s weights)")
    if cfg.depth_weighted:
        parts.append("DenseFormer depth-weighted averages after every block")
    return "; ".join(parts)


def _attention_text(cfg: ModelConfig) -> str:
    text = f"{cfg.attention.KIND} attention, {cfg.n_heads} heads of {cfg.d_head}"
    if cfg.window is not None:
        text += f", window {cfg.window}"
    if cfg.kv_sharing is not KVSharing.MULTI_HEAD:
        shared = "1 key/value head" if cfg.kv_heads == 1 else f"{cfg.kv_heads} key/value heads"
        text += f", {shared} ({cfg.kv_sharing.value})"
    gates = [g for g, on in (("output gate", cfg.attn_gate), ("kv shift", cfg.kv_shift)) if on]
    if cfg.attention.gate:
        gates.append(cfg.attention.gate)
    return text + (f" ({', '.join(gates)})" if gates else "")


def anatomy(cfg: ModelConfig, depth_weights: Tensor | None = None, title: str = "") -> go.Figure:
    """The block diagram; click a node for its hook point (its `customdata` is the name).
    `depth_weights` ([layer, source], `Transformer.depth_weights`) is drawn beside it."""
    nodes, edges = place(cfg)
    where = {n.spec.name: n for n in nodes}
    dense = depth_weights is not None
    fig = (
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.78, 0.22],
            subplot_titles=("", "DenseFormer depth weights"),
            horizontal_spacing=0.04,
        )
        if dense
        else go.Figure()
    )
    at: _Cell = {"row": 1, "col": 1} if dense else {}
    for shape in _frames(cfg, nodes):
        fig.add_shape(**shape, **at)
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a, b in edges:
        xs += [where[a].x, where[b].x, None]
        ys += [where[a].y, where[b].y, None]
    xs_link, ys_link = _row_links(nodes)
    fig.add_trace(
        go.Scatter(
            x=xs + xs_link,
            y=ys + ys_link,
            mode="lines",
            line={"color": "#aaa", "width": 1.2},
            hoverinfo="skip",
            showlegend=False,
        ),
        **at,
    )
    fig.add_trace(
        go.Scatter(
            x=[n.x for n in nodes],
            y=[n.y for n in nodes],
            mode="markers+text",
            text=[short(n.spec.name) for n in nodes],
            textposition=["top center" if i % 2 else "bottom center" for i in range(len(nodes))],
            textfont={"size": 9},
            marker={
                "size": 11,
                "color": [COLOURS[_colour_of(n)] for n in nodes],
                "line": {"width": 1, "color": "#333"},
            },
            customdata=[n.spec.name for n in nodes],
            hovertext=[_hover(n.spec) for n in nodes],
            hoverinfo="text",
            name="hook points",
            showlegend=False,
        ),
        **at,
    )
    for text, x, y in _labels(cfg, nodes):
        fig.add_annotation(
            text=text, x=x, y=y, showarrow=False, xanchor="left", font={"size": 10}, **at
        )
    if dense:
        n = depth_weights.shape[0]
        fig.add_trace(
            go.Heatmap(
                z=depth_weights.tolist(),
                x=["embed", *(f"B{i}" for i in range(n))],
                y=[f"after B{i}" for i in range(n)],
                colorscale="RdBu",
                zmid=0,
                showscale=False,
                hovertemplate="%{y}: weight of %{x} = %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
        fig.update_yaxes(autorange="reversed", domain=[0.55, 1.0], row=1, col=2)
    fig.update_xaxes(visible=False, range=[LEFT - 0.2, max(n.x for n in nodes) + 1], **at)
    fig.update_yaxes(visible=False, **at)
    width = max(n.x for n in nodes) + 1 - LEFT
    fig.update_layout(
        title=title or summary(cfg),
        title_font={"size": 12},
        template="none",
        height=min(4000, 160 + 130 * (cfg.n_layers + 2)),
        width=min(2000, int(300 + 60 * width) + (320 if dense else 0)),
        margin={"l": 20, "r": 20, "t": 70, "b": 20},
        clickmode="event",
    )
    return fig


def _colour_of(node: Node) -> str:
    local = short(node.spec.name)
    if local.split(".")[-1] in GATES:
        return "gate"
    if local.startswith(("ln", "mlm.ln")):
        return "norm"
    return {"mlp_below": "mlp"}.get(node.lane, node.lane)


def _hover(spec: HookSpec) -> str:
    shape = ", ".join("·" if s is None else str(s) for s in spec.shape)
    return f"{spec.name}<br>[{', '.join(spec.dims)}] = [{shape}]"


def _frames(cfg: ModelConfig, nodes: Sequence[Node]) -> list[dict]:
    """A frame per block (filled by the block whose weights it runs), per attention, per MLP."""
    shapes = []
    ties = cfg.weight_ties or tuple(range(cfg.n_layers))
    for row in range(cfg.n_layers):
        mine = [n for n in nodes if n.row == row]
        top = -(row + 1) * ROW
        fill = TIES[ties[row] % len(TIES)] if cfg.weight_ties else "#fafafa"
        shapes.append(_box(mine, top - ROW / 2 + 0.3, top + ROW / 2 - 0.3, fill, "#ccc", -0.6))
        if cfg.wiring is Wiring.DUAL_STREAM:  # the two streams run through the block
            for lane in ("token", "context"):
                y = top + LANES[lane]
                x0, x1 = min(n.x for n in mine) - 0.5, max(n.x for n in mine) + 0.5
                line = {"color": COLOURS[lane], "width": 1, "dash": "dash"}
                shapes.append({"type": "line", "x0": x0, "x1": x1, "y0": y, "y1": y, "line": line})
        for lanes, colour in ((("attn",), COLOURS["attn"]), (("mlp", "mlp_below"), COLOURS["mlp"])):
            part = [n for n in mine if n.lane in lanes]
            if part:
                y = part[0].y
                shapes.append(_box(part, y - 0.45, y + 0.55, "rgba(0,0,0,0)", colour, -0.4))
    return shapes


def _box(nodes: Sequence[Node], y0: float, y1: float, fill: str, line: str, pad: float) -> dict:
    return {
        "type": "rect",
        "x0": min(n.x for n in nodes) + pad,
        "x1": max(n.x for n in nodes) - pad,
        "y0": y0,
        "y1": y1,
        "fillcolor": fill,
        "line": {"color": line, "width": 1},
        "layer": "below",
    }


def _labels(cfg: ModelConfig, nodes: Sequence[Node]) -> list[tuple[str, float, float]]:
    """The text beside each row: the block (and whose weights it runs), its attention, MLP."""
    out = [("<b>embedding</b>", LEFT, 0.0), ("<b>output</b>", LEFT, -(cfg.n_layers + 1) * ROW)]
    for row in range(cfg.n_layers):
        top = -(row + 1) * ROW
        text = f"<b>block {row}</b>"
        if cfg.weight_ties and cfg.weight_ties[row] != row:
            text += f"<br>weights of {cfg.weight_ties[row]}"
        out.append((text, LEFT, top))
        layer = cfg.layer(row)  # hybrids: each block's own attention kind, window, MLP
        attn = [n for n in nodes if n.row == row and n.lane == "attn"]
        if attn:
            out.append((_attention_text(layer), attn[0].x - 0.4, attn[0].y + 0.8))
        mlp = [n for n in nodes if n.row == row and n.lane in ("mlp", "mlp_below")]
        if mlp:
            text = f"MLP {layer.mlp.KIND}" + (" (gated)" if layer.mlp.gated else "")
            if mlp[0].lane == "mlp_below":  # beside its frame: below it is the next block
                out.append((text, mlp[-1].x + 0.5, mlp[-1].y))
            else:
                out.append((text, mlp[0].x - 0.4, mlp[0].y + 0.8))
        if cfg.wiring is Wiring.DUAL_STREAM:
            out += [
                ("token stream t (attention writes it)", -0.4, top + LANES["token"] + 0.22),
                ("context stream e (the MLP writes it)", -0.4, top + LANES["context"] + 0.22),
            ]
    return out


def _row_links(nodes: Sequence[Node]) -> tuple[list[float | None], list[float | None]]:
    """The stream from the end of each row to the start of the next, around the rows."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    rows = sorted({n.row for n in nodes})
    for a, b in itertools.pairwise(rows):
        end = [n for n in nodes if n.row == a and n.lane == "stream"][-1]
        start = next(n for n in nodes if n.row == b and n.lane in ("stream", "attn"))
        middle = -(a + 1) * ROW - ROW / 2
        xs += [end.x, end.x + 0.5, end.x + 0.5, start.x - 0.5, start.x - 0.5, start.x, None]
        ys += [end.y, end.y, middle, middle, start.y, start.y, None]
        for added in (n for n in nodes if n.row == a and n.lane == "input"):  # positions
            xs += [added.x, end.x + 0.5, None]
            ys += [added.y, end.y, None]
    return xs, ys


def activation(values: Tensor, spec: HookSpec, labels: Sequence[str], title: str = "") -> go.Figure:
    """One hook point's values on one input (the batch dimension dropped) as a heatmap: rows
    its first dimension (positions labelled by token), columns the others flattened; an
    attention-shaped site ([head, query, key]) as head-by-query rows against key columns."""
    dims = [d for d in spec.dims if d != "batch"]
    x = values.detach().float().cpu()
    if x.ndim == 0:
        x = x[None]
    if x.ndim == 1:
        x = x[None]
        dims = ["", *dims]
    rows = _axis_labels(dims[0], x.shape[0], labels)
    if dims[-2:] == ["query_pos", "key_pos"] and x.ndim == 3:
        rows = [
            f"H{h} {q}" for h in range(x.shape[0]) for q in _axis_labels("pos", x.shape[1], labels)
        ]
        columns = _axis_labels("pos", x.shape[2], labels)
        grid = x.reshape(-1, x.shape[2])
    else:
        inner = list(x.shape[1:])
        columns = _flat_labels(dims[1:], inner)
        grid = x.reshape(x.shape[0], -1)
    cut = grid[:MAX_ROWS, :MAX_COLUMNS]
    note = ""
    if cut.shape != grid.shape:
        note = f" (the first {cut.shape[0]} x {cut.shape[1]} of {grid.shape[0]} x {grid.shape[1]})"
    finite = x[torch.isfinite(x)]
    stats = (
        f"mean {finite.mean():.3g}, std {finite.std(unbiased=False):.3g}, min {finite.min():.3g}, "
        f"max {finite.max():.3g}"
        if finite.numel()
        else "no finite values"
    )
    fig = go.Figure(
        go.Heatmap(
            z=cut.tolist(),
            x=columns[: cut.shape[1]],
            y=rows[: cut.shape[0]],
            hovertemplate="%{y}, %{x}: %{z:.4g}<extra></extra>",
            # patterns on 0..1, signed activations around 0 (nothing finite: either)
            **matrix_scale(finite if finite.numel() else torch.zeros(1))[1],
        )
    )
    shape = list(values.shape)
    fig.update_layout(
        title=title or f"{spec.name} {shape}: {stats}{note}",
        title_font={"size": 12},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category", "showticklabels": cut.shape[1] <= 64},
        height=min(1200, 160 + 14 * cut.shape[0]),
        width=min(1600, 300 + 14 * cut.shape[1]),
        margin={"l": 80, "r": 10, "t": 60, "b": 40},
    )
    return fig


def _axis_labels(dim: str, n: int, labels: Sequence[str]) -> list[str]:
    if dim in ("pos", "query_pos", "key_pos") and len(labels) == n:
        return [f"{i}:{t}" for i, t in enumerate(labels)]
    prefix = {"head": "H", "kv_head": "KV"}.get(dim, f"{dim} " if dim else "")
    return [f"{prefix}{i}" for i in range(n)]


def _flat_labels(dims: Sequence[str], sizes: Sequence[int]) -> list[str]:
    """Column labels of dims flattened in order: `H1.5` for (head 1, d_head 5)."""
    out = [""]
    for dim, n in zip(dims, sizes, strict=True):
        prefix = {"head": "H", "kv_head": "KV"}.get(dim, "")
        out = [f"{o}.{prefix}{i}" if o else f"{prefix}{i}" for o in out for i in range(n)]
    return out
