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
