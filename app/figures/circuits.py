"""Figures of discovered circuits (plotly), shared by the dashboard's circuits page, notebooks and
`workbench discover|jobs show --html`: the circuit as a layered graph, the edge scores'
histogram, the faithfulness curve and the ROC curve against a ground truth.

The graph is laid out in columns, one per sublayer in the order the stream is written: the
embedding, then per layer its heads (each with its q, k and v inputs as small ports on its
left) and its MLP, then the logits. An edge runs from its sender to the receiver's input;
its width grows with its score. Every node of the model's graph is drawn (the layout does
not move with the threshold), those that no drawn edge touches in grey."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from circuits.circuit import Circuit
from circuits.evaluation import ROC, Faithfulness
from workbench.errors import ConfigError
from workbench.sites import Reads, Receiver, Sender

PORT_DY = {"q": 0.22, "k": 0.0, "v": -0.22}
WIDTHS = 6  # edges are drawn in this many widths, one trace each
ARC_POINTS = 12  # points per drawn edge
EDGE_COLOR = "rgba(31, 119, 180, 0.55)"


def node_of(name: str) -> Sender | Receiver:
    """The sender or receiver (workbench.sites) a node name names; an MLP is its sender."""
    try:
        return Sender.parse(name)
    except ConfigError:
        return Receiver.parse(name, n_layers=0)  # the logits' layer is not drawn from it


def node_place(name: str, n_layers: int, n_heads: int) -> tuple[float, float]:
    """Where a sender or receiver of `circuits.graph` is drawn (x: its sublayer's column)."""
    node = node_of(name)
    if isinstance(node, Receiver):
        if node.kind is Reads.LOGITS:
            return 2.0 * n_layers + 1, 0.0
        x, y = node_place(Sender(node.layer, node.head).name, n_layers, n_heads)
        return x - 0.32, y + PORT_DY[node.kind.value]
    if node.layer < 0:
        return 0.0, 0.0
    if node.head is None:
        return 2.0 + 2 * node.layer, -(n_heads + 1) / 2
    return 1.0 + 2 * node.layer, (n_heads - 1) / 2 - node.head


def head_of(name: str) -> tuple[int, int] | None:
    """(layer, head) of a head or of one of its q/k/v inputs; None for other nodes."""
    try:
        node = node_of(name)
    except ConfigError:
        return None
    return None if node.head is None else (node.layer, node.head)


def _is_port(name: str) -> bool:
    """A head's q, k or v input."""
    node = node_of(name)
    return isinstance(node, Receiver) and node.kind in (Reads.Q, Reads.K, Reads.V)


def _is_mlp(name: str) -> bool:
    node = node_of(name)
    return isinstance(node, Sender) and node.layer >= 0 and node.head is None


def _split(edge: str) -> tuple[str, str]:
    sender, _, receiver = edge.partition("->")
    return sender, receiver


def _shape(names: list[str]) -> tuple[int, int]:
    """(layers, heads) of the model whose edges these are."""
    layers, heads = 0, 1
    for node in {n for e in names for n in _split(e)}:
        if found := head_of(node):
            layers, heads = max(layers, found[0] + 1), max(heads, found[1] + 1)
        elif _is_mlp(node):
            layers = max(layers, node_of(node).layer + 1)
    return layers, heads


def drawn_edges(circuit: Circuit, threshold: float | None) -> list[str]:
    """The circuit's own edges (threshold None), or every edge scoring at least `threshold`."""
    if threshold is None:
        return list(circuit.edges)
    return [e for e, s in circuit.scores.items() if s >= threshold]


def circuit_graph(circuit: Circuit, threshold: float | None = None, title: str = "") -> go.Figure:
    """The circuit as a layered graph: the circuit's edges, or (with `threshold`) every edge
    whose score is at least `threshold`; edge width by score. A head's node and its inputs
    carry the head's name as `customdata` (the page opens it in the attention view)."""
    every = list(dict.fromkeys([*circuit.scores, *circuit.edges]))
    n_layers, n_heads = _shape(every)
    shown = drawn_edges(circuit, threshold)
    place = {n: node_place(n, n_layers, n_heads) for e in every for n in _split(e)}
    fig = go.Figure()
    top = max((abs(circuit.scores.get(e, 0.0)) for e in shown), default=0.0) or 1.0
    buckets: dict[int, list[str]] = {}
    for edge in shown:
        level = min(WIDTHS - 1, int(abs(circuit.scores.get(edge, 0.0)) / top * WIDTHS))
        buckets.setdefault(level, []).append(edge)
    for level, edges in sorted(buckets.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for edge in edges:
            sender, receiver = _split(edge)
            x, y = _arc(place[sender], place[receiver])
            xs += [*x, None]
            ys += [*y, None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"width": 0.8 + 1.5 * level, "color": EDGE_COLOR},
                hoverinfo="skip",
                showlegend=False,
                name=f"edges {level}",
            )
        )
    fig.add_trace(_edge_labels(circuit, shown, place))
    touched = {n for e in shown for n in _split(e)}
    ports = [n for n in place if _is_port(n)]
    nodes = [n for n in place if not _is_port(n)]
    fig.add_trace(_nodes(nodes, place, touched, "nodes", size=16))
    fig.add_trace(_nodes(ports, place, touched, "inputs", size=7))
    what = (
        f"the job's circuit: {len(shown)}"
        if threshold is None
        else f"{len(shown)} edges scoring ≥ {threshold:.3g},"
    )
    fig.update_layout(
        title=title or f"{circuit.method}: {what} of {len(every)} edges",
        xaxis={
            "tickvals": [0, *(1 + 2 * i for i in range(n_layers)), 2 * n_layers + 1],
            "ticktext": ["embed", *(f"layer {i}" for i in range(n_layers)), "logits"],
            "zeroline": False,
            "showgrid": False,
        },
        yaxis={"visible": False},
        height=max(360, 70 * n_heads + 160),
        margin={"l": 20, "r": 20, "t": 60, "b": 40},
        template="plotly_white",
        clickmode="event",
        hovermode="closest",
    )
    return fig


def _arc(start: tuple[float, float], end: tuple[float, float], n: int = ARC_POINTS):
    """Points of an edge: a quadratic curve that bows upwards the more columns it skips, so
    that an edge past a column does not run through that column's nodes."""
    (x0, y0), (x1, y1) = start, end
    bow = 0.1 * max(0.0, abs(x1 - x0) - 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 2 * bow  # the curve's middle is `bow` above
    ts = [i / (n - 1) for i in range(n)]
    xs = [(1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t**2 * x1 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t**2 * y1 for t in ts]
    return xs, ys


def _edge_labels(circuit: Circuit, shown: list[str], place: dict) -> go.Scatter:
    """A small marker at each drawn edge's middle: its name and score on hover."""
    middles = []
    for edge in shown:
        xs, ys = _arc(*(place[n] for n in _split(edge)), n=3)
        middles.append((xs[1], ys[1]))
    return go.Scatter(
        x=[m[0] for m in middles],
        y=[m[1] for m in middles],
        mode="markers",
        marker={"size": 5, "color": EDGE_COLOR},
        customdata=shown,
        hovertext=[f"{e}<br>score {circuit.scores.get(e, float('nan')):.4g}" for e in shown],
        hoverinfo="text",
        showlegend=False,
        name="edges",
    )


def _nodes(names: list[str], place: dict, touched: set[str], kind: str, size: int) -> go.Scatter:
    symbols = {"embed": "diamond", "logits": "diamond"}

    def symbol(n: str) -> str:
        return symbols.get(n, "square" if _is_mlp(n) else "circle")

    return go.Scatter(
        x=[place[n][0] for n in names],
        y=[place[n][1] for n in names],
        mode="markers+text" if kind == "nodes" else "markers",
        text=[n if kind == "nodes" else "" for n in names],
        textposition="top center",
        marker={
            "size": size,
            "symbol": [symbol(n) for n in names],
            "color": ["#d62728" if n in touched else "#c7c7c7" for n in names],
            "line": {"width": 1, "color": "#444"},
        },
        customdata=names,
        hovertext=[n + ("<br>click: its attention view" if head_of(n) else "") for n in names],
        hoverinfo="text",
        showlegend=False,
        name=kind,
    )


def score_histogram(scores: dict[str, float], threshold: float | None = None) -> go.Figure:
    """How the edge scores spread, on a log10 axis (positive scores), with the threshold."""
    positive = [s for s in scores.values() if s > 0]
    fig = go.Figure(go.Histogram(x=[math.log10(s) for s in positive], nbinsx=40, name="edges"))
    rest = len(scores) - len(positive)
    if threshold is not None and threshold > 0:
        fig.add_vline(x=math.log10(threshold), line_dash="dash", line_color="crimson")
    fig.update_layout(
        title=f"edge scores: {len(scores)} edges"
        + (f" ({rest} scoring ≤ 0 not shown)" if rest else ""),
        xaxis_title="log10(score)",
        yaxis_title="edges",
        height=320,
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    return fig


def faithfulness_curve(curve: Faithfulness, kept: int | None = None) -> go.Figure:
    """The fraction of the metric recovered (0: every edge ablated, 1: the full model) with
    only the top k edges kept, against k; a dashed line at the circuit's size."""
    fig = go.Figure(
        go.Scatter(
            x=list(curve.edges_kept),
            y=list(curve.recovered),
            mode="lines+markers",
            customdata=list(curve.metric),
            hovertemplate="%{x} edges kept<br>recovered %{y:.3f}<br>metric %{customdata:.4g}"
            "<extra></extra>",
            name="recovered",
        )
    )
    if kept is not None:
        fig.add_vline(x=kept, line_dash="dash", line_color="crimson")
    fig.update_layout(
        title=f"faithfulness: full model {curve.full:.4g}, every edge ablated {curve.ablated:.4g}",
        xaxis_title="edges kept (the top-scoring)",
        yaxis_title="fraction of the metric recovered",
        height=320,
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    return fig


def roc_figure(roc: ROC, title: str = "") -> go.Figure:
    """The ROC curve of the edge scores against a ground truth, with the chance line."""
    fig = go.Figure(
        [
            go.Scatter(
                x=list(roc.fpr),
                y=list(roc.tpr),
                mode="lines+markers",
                customdata=[t if math.isfinite(t) else None for t in roc.thresholds],
                hovertemplate="score ≥ %{customdata:.4g}<br>FPR %{x:.3f}<br>TPR %{y:.3f}"
                "<extra></extra>",
                name="edges",
            ),
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"dash": "dot", "color": "#999"},
                hoverinfo="skip",
                name="chance",
            ),
        ]
    )
    fig.update_layout(
        title=title or f"ROC against the ground truth: AUC {roc.auc:.3f}",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
        xaxis_range=[-0.02, 1.02],
        yaxis_range=[-0.02, 1.02],
        height=320,
        template="plotly_white",
        showlegend=False,
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    return fig
