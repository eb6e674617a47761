"""Figures of vision models: an image with a patch-grid overlay of one attention row (the
class token's attention of a head, or its attention rollout; `probes.rollout`)."""

from __future__ import annotations

import textwrap

import plotly.graph_objects as go
import torch
from torch import Tensor

# transparent at 0, so the image shows through where a patch gets no weight
WEIGHT_SCALE = [[0.0, "rgba(220,20,20,0)"], [1.0, "rgba(220,20,20,0.65)"]]
SIGNED_SCALE = [
    [0.0, "rgba(30,60,220,0.65)"],
    [0.5, "rgba(255,255,255,0)"],
    [1.0, "rgba(220,20,20,0.65)"],
]


def _rgb(image: Tensor) -> list:
    """[channels, H, W] floats to H x W x 3 bytes, min-max scaled (the model's inputs are
    normalised, not pixels)."""
    image = image.detach().double().cpu()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    return (scaled * 255).round().byte().permute(1, 2, 0).tolist()


def patch_overlay(
    image: Tensor,
    weights: Tensor,
    title: str,
    *,
    signed: bool = False,
) -> go.Figure:
    """`image` [channels, H, W] (or a batch of one) under a side x side grid of `weights`
    (row-major patches, as the model cuts them), each patch coloured by its weight and
    labelled r{row}c{col} on hover: clear at 0, red at the largest weight. A `signed` map (a
    mixing matrix's row) gets a diverging scale centred on 0, blue below, red above."""
    if image.ndim == 4:
        image = image[0]
    side = weights.shape[-1]
    size = image.shape[-1]
    patch = size / side
    labels = [[f"r{r}c{c}" for c in range(side)] for r in range(side)]
    scale = (
        {"colorscale": SIGNED_SCALE, "zmid": 0.0}
        if signed
        else {"colorscale": WEIGHT_SCALE, "zmin": 0.0, "zmax": max(float(weights.max()), 1e-12)}
    )
    fig = go.Figure(go.Image(z=_rgb(image), hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=weights.detach().double().cpu().tolist(),
            x0=(patch - 1) / 2,
            dx=patch,
            y0=(patch - 1) / 2,
            dy=patch,
            customdata=labels,
            text=[[f"{w:.2f}" for w in row] for row in weights.tolist()],
            texttemplate="%{text}" if side <= 8 else None,
            hovertemplate="patch %{customdata}<br>weight %{z:.4f}<extra></extra>",
            **scale,
        )
    )
    edges = [k * patch - 0.5 for k in range(side + 1)]
    line = {"color": "rgba(255,255,255,0.6)", "width": 1}
    for at in edges:
        fig.add_shape(type="line", x0=at, x1=at, y0=-0.5, y1=size - 0.5, line=line)
        fig.add_shape(type="line", x0=-0.5, x1=size - 0.5, y0=at, y1=at, line=line)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, scaleanchor="x")
    lines = textwrap.wrap(title, width=70)
    fig.update_layout(
        title={"text": "<br>".join(lines), "font": {"size": 14}},
        width=560,
        height=520 + 18 * len(lines),
        margin={"l": 20, "r": 20, "t": 30 + 20 * len(lines), "b": 20},
    )
    return fig
