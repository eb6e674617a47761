"""Attention figures shared by the dashboard and notebooks (plotly): every head at once, the
model view's layer x head matrix, one head (as a matrix or as BertViz-style lines, several
heads overlaid) and the token view.

Long inputs: a matrix goes to the browser as a window of positions, and a window wider than
`MAX_CELLS` positions is pooled into blocks (each block shows its largest weight, by absolute
value, so a sharp peak stays visible) and sent as a typed array (float32, base64), never as
JSON lists of numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from workbench.errors import InputError


def attention_grid(patterns: Tensor, tokens: list[str], title: str = "") -> go.Figure:
    """One heatmap per layer (rows) and head (columns) of patterns [layer, head, query, key]."""
    n_layers, n_heads = patterns.shape[:2]
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]  # positions keep repeated tokens apart
    fig = make_subplots(
        rows=n_layers,
        cols=n_heads,
        horizontal_spacing=0.02,
        vertical_spacing=0.06,
        subplot_titles=[f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)],
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=patterns[layer, head].tolist(),
                    x=labels,
                    y=labels,
                    zmin=0,
                    zmax=1,
                    colorscale="Blues",
                    showscale=layer == 0 and head == 0,
                    hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=True, col=1)
    size = max(180, 12 * len(tokens))
    fig.update_layout(
        title=title,
        height=size * n_layers + 120,
        width=min(1800, size * n_heads + 200),
        margin={"l": 80, "r": 20, "t": 80, "b": 20},
    )
    return fig


def head_matrix(values: Tensor, metric: str, description: str) -> go.Figure:
    """The model view: one cell per layer (rows) and head (columns), coloured by `metric`;
    a click on a cell opens that head."""
    n_layers, n_heads = values.shape
    text = [["" if v != v else f"{v:.2f}" for v in row] for row in values.tolist()]  # NaN: blank
    fig = go.Figure(
        go.Heatmap(
            z=values.tolist(),
            x=[f"H{h}" for h in range(n_heads)],
            y=[f"L{layer}" for layer in range(n_layers)],
            text=text,
            texttemplate="%{text}" if n_layers * n_heads <= 400 else None,
            colorscale="Viridis",
            hovertemplate="%{y} %{x}<br>" + metric + " %{z:.3f}<extra>click to open</extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    if bool(values.isnan().all()):  # nothing to colour: say why instead of an empty box
        fig.add_annotation(
            text=f"{metric} is undefined for every head on this prompt<br>(induction needs a "
            "repeated token): choose another head summary",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    fig.update_layout(
        title=f"model view:<br><sup>{description}</sup>",
        height=max(260, 36 * n_layers + 120),
        width=max(420, 48 * n_heads + 160),
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


MAX_CELLS = 256  # positions per axis sent at full resolution
MAX_LINES = 128  # positions per side drawn as lines
MAX_SEGMENTS = 20_000  # lines sent at most: the strongest
HEAD_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip


@dataclass(frozen=True)
class Window:
    """The positions shown: queries [q0, q1) and keys [k0, k1)."""

    q0: int
    q1: int
    k0: int
    k1: int

    @classmethod
    def full(cls, n: int) -> Window:
        return cls(0, n, 0, n)

    def of(self, matrix: Tensor) -> Tensor:
        return matrix[..., self.q0 : self.q1, self.k0 : self.k1]

    @property
    def label(self) -> str:
        return f"queries {self.q0}-{self.q1 - 1}, keys {self.k0}-{self.k1 - 1}"


def pool_max_abs(matrix: Tensor, block_q: int, block_k: int) -> Tensor:
    """Blocks of `block_q` x `block_k` cells pooled to the cell of largest magnitude (its sign
    kept); a ragged last block pools what it has."""
    nq, nk = matrix.shape
    pad = matrix.new_zeros(-(-nq // block_q) * block_q, -(-nk // block_k) * block_k)
    pad[:nq, :nk] = matrix
    blocks = pad.reshape(pad.shape[0] // block_q, block_q, pad.shape[1] // block_k, block_k)
    blocks = blocks.permute(0, 2, 1, 3).flatten(2)  # [block row, block col, cells]
    at = blocks.abs().argmax(-1, keepdim=True)
    return blocks.gather(-1, at)[..., 0]


def matrix_scale(values: Tensor, mixing: bool = False) -> tuple[bool, dict]:
    """Whether `values` are drawn signed, and the heatmap's colour scale: diverging and
    centred on 0 for a mixing matrix (`mixing`) or any negative value, else sequential from 0
    (probabilities: up to 1 at least). The one rule every matrix of the dashboard follows."""
    signed = mixing or bool((values < 0).any())
    if signed:
        return signed, {"colorscale": "RdBu", "zmid": 0.0}
    return signed, {"colorscale": "Blues", "zmin": 0.0, "zmax": max(1.0, float(values.max()))}


def head_pattern(
    pattern: Tensor,
    tokens: list[str],
    title: str,
    *,
    mixing: bool = False,
    window: Window | None = None,
) -> go.Figure:
    """The head view as a matrix: one pattern [query, key] with readable query and key labels
    (`position:token`). The effective mixing matrix of an attention kind without a softmax
    (`mixing`; linear, gated-linear, delta-rule, pooling), or any signed pattern, gets a
    diverging scale centred on 0 and its row sums; a probability pattern a 0..1 scale.
    Only `window` is drawn; wider than `MAX_CELLS` positions, it is pooled into blocks."""
    window = window or Window.full(pattern.shape[-1])
    part = window.of(pattern).float()
    signed, scale = matrix_scale(part, mixing)
    block_q = -(-part.shape[0] // MAX_CELLS)
    block_k = -(-part.shape[1] // MAX_CELLS)
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    if block_q == 1 and block_k == 1:
        axes = {"x": labels[window.k0 : window.k1], "y": labels[window.q0 : window.q1]}
        hover = "query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"
        shown = part
        origin = [0, 0]  # category axes: cell i is at i
    else:  # numeric axes: a cell sits at its block's first position
        axes = {"x0": window.k0, "dx": block_k, "y0": window.q0, "dy": block_q}
        hover = (
            f"queries %{{y}} to %{{y}}+{block_q - 1}<br>keys %{{x}} to %{{x}}+{block_k - 1}"
            "<br>largest weight %{z:.3f}<extra>zoom in for each token</extra>"
        )
        shown = pool_max_abs(part, block_q, block_k)
        title += f" ({block_q}x{block_k} blocks; zoom in for tokens)"
        origin = [window.q0, window.k0]
    fig = go.Figure(
        go.Heatmap(z=shown.numpy().astype(np.float32), hovertemplate=hover, **axes, **scale)
    )
    fig.update_layout(meta={"origin": origin, "block": [block_q, block_k]})  # for zooms
    if signed:  # each shown query's whole row, whatever keys the window shows
        rows = pattern[window.q0 : window.q1].sum(-1).tolist()
        sums = ", ".join(f"{s:.2f}" for s in rows[:12]) + (", ..." if len(rows) > 12 else "")
        title = f"{title}: effective mixing matrix (row sums from query {window.q0}: {sums})"
    if window != Window.full(pattern.shape[-1]):
        title += f" [{window.label}]"
    size = min(900, max(360, 18 * shown.shape[0] + 160))
    fig.update_yaxes(autorange="reversed", title="query", tickfont={"size": 10})
    fig.update_xaxes(title="key", tickangle=-60, tickfont={"size": 10})
    fig.update_layout(title=title, height=size, width=size + 80, template="none")
    return fig


def head_lines(
    patterns: dict[str, Tensor], tokens: list[str], title: str, *, window: Window | None = None
) -> go.Figure:
    """The head view as lines (BertViz): queries in the left column, keys in the right, a
    line from each query to each key it attends to, its opacity the weight; several heads
    (`patterns`: name -> [query, key]) overlaid, one colour each. Signed weights (mixing
    matrices) draw their magnitude, dashed where negative."""
    n = next(iter(patterns.values())).shape[-1]
    window = window or Window.full(n)
    if max(window.q1 - window.q0, window.k1 - window.k0) > MAX_LINES:
        raise InputError(
            f"lines are drawn for at most {MAX_LINES} positions per side; this window shows "
            f"{window.label}: zoom in on the matrix first, or use the matrix"
        )
    queries = list(range(window.q0, window.q1))
    keys = list(range(window.k0, window.k1))
    parts = {name: window.of(p).double().numpy() for name, p in patterns.items()}
    peaks = {name: float(np.abs(part).max()) or 1.0 for name, part in parts.items()}
    # lines of at least 2% of their head's peak; when there are too many to send, the
    # strongest (ties broken by order)
    shares = np.concatenate([np.abs(part).ravel() / peaks[n] for n, part in parts.items()])
    keep = shares >= 0.02
    if keep.sum() > MAX_SEGMENTS:
        keep = np.zeros_like(keep)
        keep[np.argpartition(-shares, MAX_SEGMENTS)[:MAX_SEGMENTS]] = True
        title += f" (the strongest {MAX_SEGMENTS:,} lines)"
    kept = dict(zip(parts, np.split(keep, len(parts)), strict=True))
    fig = go.Figure()
    for h, (name, part) in enumerate(parts.items()):
        colour = HEAD_COLOURS[h % len(HEAD_COLOURS)]
        # one trace per opacity level (tenths of the head's peak) and sign
        level = np.ceil(np.abs(part) / peaks[name] * 10).astype(int)
        level[~kept[name].reshape(part.shape)] = 0
        for negative in (False, True):
            for step in range(1, 11):
                qi, ki = np.nonzero((level == step) & ((part < 0) == negative))
                if not len(qi):
                    continue
                xs = np.tile(np.array([0.0, 1.0, np.nan], dtype=np.float32), len(qi))
                ys = np.stack([qi + window.q0, ki + window.k0, np.full(len(qi), np.nan)], 1)
                fig.add_trace(
                    go.Scatter(
                        x=xs,  # typed arrays: a few bytes per line
                        y=ys.ravel().astype(np.float32),
                        mode="lines",
                        line={"color": colour, "width": 2, "dash": "dot" if negative else "solid"},
                        opacity=step / 10,
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=name,
                    )
                )
        fig.add_trace(  # the legend entry of this head
            go.Scatter(x=[None], y=[None], mode="lines", line={"color": colour}, name=name)
        )
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    fig.add_trace(_column(0.0, queries, labels, "middle left"))  # text left of the line ends
    fig.add_trace(_column(1.0, keys, labels, "middle right"))
    height = min(2400, max(360, 16 * max(len(queries), len(keys)) + 120))
    fig.update_xaxes(visible=False, range=[-0.6, 1.6])
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(title=title, height=height, width=560, template="none")
    return fig


def _column(x: float, positions: list[int], labels: list[str], where: str) -> go.Scatter:
    return go.Scatter(
        x=[x] * len(positions),
        y=positions,
        mode="text",
        text=[labels[p] for p in positions],
        textposition=where,
        hoverinfo="skip",
        showlegend=False,
    )


def head_overlay(
    patterns: dict[str, Tensor], tokens: list[str], title: str, *, window: Window | None = None
) -> go.Figure:
    """Several heads of a layer in one matrix: each head has a colour, and a cell mixes the
    colours of the heads by their weights (white where none attends); hover lists each
    head's weight."""
    n = next(iter(patterns.values())).shape[-1]
    window = window or Window.full(n)
    if max(window.q1 - window.q0, window.k1 - window.k0) > MAX_CELLS:
        raise InputError(
            f"heads are overlaid for at most {MAX_CELLS} positions per side; this window shows "
            f"{window.label}: zoom in first, or view one head"
        )
    names = list(patterns)
    weights = torch.stack([window.of(patterns[k]).abs().double() for k in names])  # [h, q, k]
    weights = weights / weights.amax((1, 2), keepdim=True).clamp_min(1e-12)
    colours = torch.tensor(
        [
            [int(HEAD_COLOURS[i % 16][j : j + 2], 16) / 255 for j in (1, 3, 5)]
            for i in range(len(names))
        ],
        dtype=torch.float64,
    )  # [h, rgb]
    # each head darkens white towards its colour by its weight: 1 - sum_h w_h (1 - c_h)
    ink = torch.einsum("hqk,hc->qkc", weights, 1 - colours).clamp(0, 1)
    image = ((1 - ink) * 255).round().to(torch.uint8).numpy()
    raw = torch.stack([window.of(patterns[k]) for k in names]).permute(1, 2, 0)  # [q, k, h]
    hover = "query %{y}<br>key %{x}<br>" + "<br>".join(
        f"{k}: %{{customdata[{i}]:.3f}}" for i, k in enumerate(names)
    )
    fig = go.Figure(
        go.Image(
            z=image,
            x0=window.k0,  # positions on the axes: a zoom names the positions to fetch
            y0=window.q0,
            customdata=raw.float().numpy(),  # a typed array, not a string per cell
            hovertemplate=hover + "<extra></extra>",
        )
    )
    fig.update_layout(meta={"origin": [window.q0, window.k0], "block": [1, 1]})
    for i, name in enumerate(names):  # a legend of the head colours
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", name=name,
                marker={"color": HEAD_COLOURS[i % 16], "symbol": "square", "size": 12},
            )
        )  # fmt: skip
    size = min(900, max(360, 18 * image.shape[0] + 160))
    fig.update_xaxes(title=f"key ({window.k0}..{window.k1 - 1})", showgrid=False)
    fig.update_yaxes(title=f"query ({window.q0}..{window.q1 - 1})", showgrid=False)
    fig.update_layout(title=title, height=size, width=size + 160, template="none")
    return fig


def token_view(patterns: Tensor, tokens: list[str], position: int, layer: int) -> go.Figure:
    """The token view of one layer (CircuitsVis-style): for the chosen position, what it
    attends to (its row of each head's pattern) and what attends to it (its column), one row
    per head and the heads' mean; click a token to choose it."""
    n_heads = patterns.shape[0]
    rows = [f"H{h}" for h in range(n_heads)] + ["mean"]
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    to = torch.cat([patterns[:, position, :], patterns[:, position, :].mean(0, keepdim=True)])
    by = torch.cat([patterns[:, :, position], patterns[:, :, position].mean(0, keepdim=True)])
    fig = make_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.18,
        subplot_titles=[
            f"what {labels[position]} attends to (its query row)",
            f"what attends to {labels[position]} (its key column)",
        ],
    )
    _, scale = matrix_scale(patterns)
    for r, (values, what) in enumerate(((to, "attention to key"), (by, "attention from query"))):
        fig.add_trace(
            go.Heatmap(
                z=values.float().numpy(),
                x=labels,
                y=rows,
                showscale=r == 0,
                hovertemplate="%{y} %{x}<br>" + what + " %{z:.3f}<extra>click to choose</extra>",
                **scale,
            ),
            row=r + 1,
            col=1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-60, tickfont={"size": 9})
    fig.update_layout(
        title=f"token view: layer {layer}, position {labels[position]}",
        height=2 * (22 * (n_heads + 1) + 120) + 80,
        width=min(1800, max(600, 14 * len(tokens) + 200)),
        template="none",
    )
    return fig
