"""Figures of series models (the iTransformer): a head's variate x variate mixing."""

from __future__ import annotations

import textwrap

import plotly.graph_objects as go
from torch import Tensor

from app.figures.attention import matrix_scale


def variate_mixing(
    pattern: Tensor, labels: list[str], title: str, note: str = "", *, mixing: bool = False
) -> go.Figure:
    """One pattern [variate, variate]: rows the variates whose forecasts read, columns the
    variates read, with `note` (what the view shows) under the title. A `mixing` matrix (an
    attention kind without a softmax) or any signed pattern gets a scale centred on 0."""
    _, scale = matrix_scale(pattern, mixing)
    n = len(labels)
    fig = go.Figure(
        go.Heatmap(
            z=pattern.detach().double().cpu().tolist(),
            x=labels,
            y=labels,
            text=[[f"{w:.2f}" for w in row] for row in pattern.tolist()],
            texttemplate="%{text}" if n <= 12 else None,
            hovertemplate="variate %{y}<br>reads %{x}<br>weight %{z:.3f}<extra></extra>",
            **scale,
        )
    )
    size = min(900, max(380, 40 * n + 200))
    lines = textwrap.wrap(note, width=max(60, size // 7))
    caption = "".join(
        f"<br><span style='font-size:11px;color:#555'>{line}</span>" for line in lines
    )
    fig.update_yaxes(autorange="reversed", title="variate (query)")
    fig.update_xaxes(title="variate read (key)", tickangle=-45)
    fig.update_layout(
        title={
            "text": title + caption,
            "font": {"size": 14},
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 12},
        },
        width=size + 80,
        height=size + 18 * len(lines),
        margin={"l": 120, "r": 20, "t": 60 + 18 * len(lines), "b": 80},
    )
    return fig
