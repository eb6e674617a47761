"""Figures shared by the dashboard and notebooks (plotly)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor


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
    fig.update_layout(
        title=f"model view: {description}",
        height=max(260, 36 * n_layers + 120),
        width=max(420, 48 * n_heads + 160),
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


def head_pattern(
    pattern: Tensor, tokens: list[str], title: str, *, mixing: bool = False
) -> go.Figure:
    """The head view: one pattern [query, key] with readable query and key labels. The
    effective mixing matrix of an attention kind without a softmax (`mixing`; linear,
    gated-linear, delta-rule, pooling), or any signed pattern, gets a diverging scale centred
    on 0 and its row sums; a probability pattern a 0..1 scale."""
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    signed = mixing or bool((pattern < 0).any())
    scale = (
        {"colorscale": "RdBu", "zmid": 0.0}
        if signed
        else {"colorscale": "Blues", "zmin": 0.0, "zmax": max(1.0, float(pattern.max()))}
    )
    fig = go.Figure(
        go.Heatmap(
            z=pattern.tolist(),
            x=labels,
            y=labels,
            hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>",
            **scale,
        )
    )
    if signed:
        sums = ", ".join(f"{s:.2f}" for s in pattern.sum(-1).tolist()[:12])
        title = f"{title}: effective mixing matrix (row sums {sums}{', ...' if len(labels) > 12 else ''})"
    size = min(900, max(360, 18 * len(labels) + 160))
    fig.update_yaxes(autorange="reversed", title="query", tickfont={"size": 10})
    fig.update_xaxes(title="key", tickangle=-60, tickfont={"size": 10})
    fig.update_layout(title=title, height=size, width=size + 80)
    return fig
