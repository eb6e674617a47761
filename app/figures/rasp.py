"""Figures of RASP programs and their compiled models: the residual stream decoded to
`sop:value` per stage and position, and the operation each head computes (`rasp.readout`);
a program's values per SOp, its operations as a graph, its layer and head layout, its
ground-truth circuit (with a discovery's edges against it) and a discovery's ROC."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import plotly.graph_objects as go

from circuits.evaluation import ROC
from circuits.graph import Graph, build_graph
from rasp import rasp
from rasp.analysis import ProgramValues
from rasp.compiler.compiler import CompiledProgram
from rasp.compiler.graph import ProgramGraph
from rasp.describe import operation_text, selector_text
from rasp.readout import RaspLabels, ResidualReadout


def residual_table(
    readout: ResidualReadout, title: str = "", *, new_only: bool = True
) -> go.Figure:
    """Stages (rows: the embedding, then each block's attention and MLP) by positions: in each
    cell the SOp values the residual stream holds there, decoded, as `sop:value` lines; with
    `new_only`, only what that sublayer wrote."""
    positions = [f"{i}:{t}" for i, t in enumerate(readout.positions)]
    columns = [list(readout.stages)]
    for p in range(len(positions)):
        column = []
        for s in range(len(readout.stages)):
            lines = readout.cell(s, p, new_only=new_only)
            column.append("<br>".join(lines) or "·")
        columns.append(column)
    tallest = max((cell.count("<br>") + 1 for column in columns[1:] for cell in column), default=1)
    fig = go.Figure(
        go.Table(
            header={"values": ["stage", *positions], "align": "left", "fill_color": "#ddd"},
            cells={"values": columns, "align": "left", "height": 16 * tallest + 8},
        )
    )
    what = "what each sublayer wrote" if new_only else "every SOp present"
    fig.update_layout(
        title=title
        or f"residual stream decoded ({what}); max one-hot deviation {readout.deviation:.1e}",
        height=min(2400, 80 + len(readout.stages) * (16 * tallest + 10)),
        width=min(1800, 140 + 220 * len(positions)),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def head_table(labels: RaspLabels, title: str = "") -> go.Figure:
    """Every used head (layer, head) with the operation it computes."""
    rows = [(r.layer, r.head, r.name) for row in labels.heads for r in row if r is not None]
    fig = go.Figure(
        go.Table(
            columnwidth=[60, 60, 700],
            header={"values": ["layer", "head", "computes"], "align": "left", "fill_color": "#ddd"},
            cells={
                "values": [list(c) for c in zip(*rows, strict=True)] or [[], [], []],
                "align": "left",
            },
        )
    )
    fig.update_layout(
        title=title or f"heads of {labels.program}",
        height=120 + 28 * len(rows),
        width=900,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


# ----- the RASP page: a program's values, its graph and layout, its circuit ------------------

KIND_COLOURS = {
    "TokensType": "#555",
    "IndicesType": "#555",
    "Aggregate": "#1f77b4",  # a head
    "SelectorWidth": "#1f77b4",  # a head and an MLP
    "Map": "#ff7f0e",  # an MLP
    "SequenceMap": "#ff7f0e",
    "LinearSequenceMap": "#ff7f0e",
}
SELECTOR_COLOUR = "#2ca02c"


def values_table(run: ProgramValues, title: str = "") -> go.Figure:
    """Every SOp (rows, in graph order) by input position: the interpreter's values."""
    positions = [f"{i}:{t}" for i, t in enumerate(run.input)]
    columns = [
        [f"<b>{s}</b>" if s == run.program else s for s in run.sops],
        list(run.kinds),
        *([_shown(values[i]) for values in run.values] for i in range(len(run.input))),
    ]
    fig = go.Figure(
        go.Table(
            columnwidth=[220, 120, *[70] * len(positions)],
            header={"values": ["SOp", "kind", *positions], "align": "left", "fill_color": "#ddd"},
            cells={"values": columns, "align": "left"},
        )
    )
    fig.update_layout(
        title=title or f"{run.program} on {''.join(map(str, run.input))!r}: every SOp's values",
        height=min(2400, 120 + 22 * len(run.sops)),
        width=min(1800, 380 + 80 * len(positions)),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "None" if value is None else str(value)


def op_graph(graph: ProgramGraph, title: str = "") -> go.Figure:
    """The program's expressions (SOps and selectors) as a graph, inputs on the left: each
    column after the columns of what it reads. Blue: heads (aggregates, selector widths),
    orange: MLPs (maps), green: selectors; hover for the operation."""
    depth: dict[str, int] = {}
    for label in graph.order:
        depth[label] = 1 + max((depth[c] for c in graph.children[label]), default=-1)
    columns: dict[int, list[str]] = {}
    for label in graph.order:
        columns.setdefault(depth[label], []).append(label)
    where = {
        label: (d, (len(col) - 1) / 2 - i)
        for d, col in columns.items()
        for i, label in enumerate(col)
    }
    xs: list[float | None] = []
    ys: list[float | None] = []
    for label in graph.order:
        for child in graph.children[label]:
            (x0, y0), (x1, y1) = where[child], where[label]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#bbb"}, hoverinfo="skip"))
    labels = list(graph.order)
    fig.add_trace(
        go.Scatter(
            x=[where[label][0] for label in labels],
            y=[where[label][1] for label in labels],
            mode="markers+text",
            text=[label if len(label) <= 18 else label[:17] + "…" for label in labels],
            textposition="top center",
            marker={
                "size": [16 if label == graph.output.label else 11 for label in labels],
                "color": [_colour(graph.exprs[label]) for label in labels],
                "line": {"width": 1, "color": "#333"},
            },
            customdata=labels,
            hovertext=[_hover(graph.exprs[label]) for label in labels],
            hoverinfo="text",
            name="expressions",
        )
    )
    tallest = max(len(col) for col in columns.values())
    fig.update_layout(
        title=title or f"the operations of {graph.output.label} (inputs left, output right)",
        showlegend=False,
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=min(1600, 160 + 50 * tallest),
        width=min(1800, 240 + 130 * len(columns)),
        template="none",
        margin={"l": 20, "r": 20, "t": 60, "b": 20},
    )
    return fig


def _colour(expr: rasp.RASPExpr) -> str:
    if isinstance(expr, rasp.Selector):
        return SELECTOR_COLOUR
    return KIND_COLOURS.get(type(expr).__name__, "#9467bd")


def _hover(expr: rasp.RASPExpr) -> str:
    kind = type(expr).__name__
    if isinstance(expr, rasp.Aggregate | rasp.SelectorWidth):
        return f"{kind}: {operation_text(expr)}"
    if isinstance(expr, rasp.Selector):
        return f"{expr.label} = {selector_text(expr)}"
    encoding = rasp.get_encoding(expr).value if isinstance(expr, rasp.SOp) else ""
    return f"{expr.label}: {kind} ({encoding})"


def layer_layout(
    heads: Sequence[Sequence[str | None]], mlps: Sequence[Sequence[str]], title: str
) -> go.Figure:
    """Layers (rows) by heads and the MLP (columns): what each computes, blank if unused.
    A head's cell is `H{head}` by `L{layer}`, as the attention page's model view reads a click."""
    n_layers = len(heads)
    n_heads = max((len(row) for row in heads), default=0)
    x = [f"H{h}" for h in range(n_heads)] + ["MLP"]
    y = [f"L{layer}" for layer in range(n_layers)]
    z, text = [], []
    for layer in range(n_layers):
        row = list(heads[layer]) + [None] * (n_heads - len(heads[layer]))
        cells = [*row, ", ".join(mlps[layer]) or None]
        z.append([0 if c is None else (2 if i == n_heads else 1) for i, c in enumerate(cells)])
        text.append([c or "" for c in cells])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#f4f4f4"], [0.5, "#c6dbef"], [1, "#fdd0a2"]],
            zmin=0,
            zmax=2,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y} %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        yaxis={"autorange": "reversed"},
        height=120 + 36 * n_layers,
        width=min(1800, 200 + 180 * len(x)),
        margin={"l": 50, "r": 10, "t": 60, "b": 30},
    )
    return fig


def labels_layout(labels: RaspLabels) -> tuple[list[list[str | None]], list[list[str]]]:
    """A compiled model's heads (the SOp each computes) and MLPs, per layer."""
    heads = [[None if r is None else r.sop for r in row] for row in labels.heads]
    mlps = [
        [s for s, at in labels.sublayers.items() if at == 2 * layer + 1 and s != "one"]
        for layer in range(len(labels.heads))
    ]
    return heads, mlps


EDGE_STYLES = {
    "kept, in the ground truth": {"color": "#2ca02c", "width": 2.5},
    "ground truth, missed": {"color": "#d62728", "width": 2, "dash": "dash"},
    "kept, not in the ground truth": {"color": "#ff7f0e", "width": 1.5, "dash": "dot"},
    "ground truth": {"color": "#1f77b4", "width": 2},
}
INPUT_OFFSET = {"q": 0.12, "k": 0.0, "v": -0.12, "mlp": 0.0, "logits": 0.0}


def circuit_graph(
    graph: Graph, truth: Iterable[str], found: Iterable[str] | None = None, title: str = ""
) -> go.Figure:
    """A circuit drawn layer by layer: the embedding, each layer's heads (their query, key
    and value inputs just above, at and below them) and MLP, the logits. Alone, the ground
    truth's edges; with `found` (a discovery's kept edges), each edge by whether both, only
    the truth or only the discovery holds it."""
    place = _places(graph)
    truth = set(truth)
    groups: dict[str, list[str]] = {}
    if found is None:
        groups["ground truth"] = sorted(truth)
    else:
        found = set(found)
        groups["kept, in the ground truth"] = sorted(truth & found)
        groups["ground truth, missed"] = sorted(truth - found)
        groups["kept, not in the ground truth"] = sorted(found - truth)
    receivers = {r.name: r for r in graph.receivers}
    fig = go.Figure()
    nodes = [s.name for s in graph.senders] + ["logits"]
    fig.add_trace(
        go.Scatter(
            x=[place[n][0] for n in nodes],
            y=[place[n][1] for n in nodes],
            mode="markers+text",
            text=nodes,
            textposition="top center",
            marker={"size": 14, "color": "#eee", "line": {"width": 1, "color": "#555"}},
            customdata=nodes,
            hoverinfo="text",
            name="components",
            showlegend=False,
        )
    )
    for group, edges in groups.items():
        xs: list[float | None] = []
        ys: list[float | None] = []
        mid_x, mid_y = [], []
        for name in edges:
            sender, _, receiver = name.partition("->")
            r = receivers[receiver]
            head = receiver.rsplit(".", 1)[0] if r.kind in "qkv" else receiver
            (x0, y0), (x1, y1) = place[sender], place[head]
            y1 += INPUT_OFFSET[r.kind]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
            mid_x.append(x0 + 0.8 * (x1 - x0))
            mid_y.append(y0 + 0.8 * (y1 - y0))
        style = EDGE_STYLES[group]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line=style, name=f"{group} ({len(edges)})")
        )
        fig.add_trace(  # hover targets on the lines: each edge's name
            go.Scatter(
                x=mid_x,
                y=mid_y,
                mode="markers",
                marker={"size": 6, "color": style["color"]},
                hovertext=edges,
                hoverinfo="text",
                showlegend=False,
            )
        )
    heads = max((s.head or 0) for s in graph.senders) + 1
    fig.update_layout(
        title=title or f"ground-truth circuit: {len(truth)} edges",
        xaxis={"visible": False},
        yaxis={"visible": False, "range": [-heads + 0.4, 1.3]},
        template="none",
        height=220 + 90 * heads,
        width=min(1800, 260 + 110 * (2 * graph.receivers[-1].layer + 2)),
        legend={"orientation": "h"},
        margin={"l": 20, "r": 20, "t": 60, "b": 20},
    )
    return fig


def ground_truth_figure(compiled: CompiledProgram) -> go.Figure:
    """A compiled program's ground-truth circuit (`workbench compile --html`)."""
    edges = compiled.ground_truth.edges
    title = f"ground-truth circuit of {compiled.program.label}: {len(edges)} edges"
    return circuit_graph(build_graph(compiled.model.config), edges, title=title)


def _places(graph: Graph) -> dict[str, tuple[float, float]]:
    """x: the embedding 0, layer l's heads 2l + 1 and its MLP 2l + 2, the logits last."""
    place: dict[str, tuple[float, float]] = {"embed": (0.0, 0.0)}
    for s in graph.senders[1:]:
        if s.head is not None:
            place[s.name] = (2.0 * s.layer + 1, -float(s.head))
        else:
            place[s.name] = (2.0 * s.layer + 2, 0.8)
    place["logits"] = (2.0 * graph.receivers[-1].layer + 1, 0.0)
    return place


def roc_curve(roc: ROC, title: str = "") -> go.Figure:
    """A discovery's ROC against the ground truth: true against false positive rate as the
    score threshold falls, the AUC in the title."""
    fig = go.Figure(
        go.Scatter(
            x=list(roc.fpr),
            y=list(roc.tpr),
            mode="lines+markers",
            line={"shape": "linear"},
            text=[f"score >= {t:.3g}" for t in roc.thresholds],
            hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}, %{text}<extra></extra>",
            name="ROC",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="chance"
        )
    )
    fig.update_layout(
        title=title or f"ROC against the ground truth: AUC {roc.auc:.3f}",
        xaxis={"title": "false positive rate", "range": [-0.02, 1.02]},
        yaxis={"title": "true positive rate", "range": [-0.02, 1.02]},
        height=420,
        width=480,
        showlegend=False,
    )
    return fig
