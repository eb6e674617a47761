"""Patching figures (plotly), shared by the dashboard, notebooks and `workbench patch --html`:
a sweep's heatmap (`circuits.result.PatchResult`: layer x position, layer x head, or layer and
head x position), whose hover gives the fraction of the effect a patch restores, and one
patched run's top tokens next to the unpatched runs'."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from circuits.result import PatchResult

MAX_TEXT_CELLS = 400  # cells that show their number written in them
MAX_HOVER_CELLS = 20_000  # cells whose hover text is sent (about 100 bytes each)


@dataclass(frozen=True)
class Cells:
    """A sweep's grid laid out as a matrix: rows (layer, or layer and head), columns
    (position, head, or one column), the score of each cell and its configuration's index in
    `PatchResult.configs`."""

    rows: list[str]
    columns: list[str]
    z: Tensor  # [row, column]
    index: Tensor  # [row, column]: the configuration drawn there


def cells(result: PatchResult, labels: Sequence[str] | None = None) -> Cells:
    """Positions go across (labelled by `labels`, one per position, or their numbers), then
    heads when positions are not swept; the other dims go down, layer first."""
    dims = list(result.dims)
    across = "pos" if "pos" in dims else "head" if "head" in dims else None
    down = [d for d in dims if d != across]
    order = [dims.index(d) for d in down] + ([dims.index(across)] if across else [])
    n = len(result.configs)
    index = torch.arange(n).view(result.shape).permute(order)
    n_columns = result.shape[dims.index(across)] if across else 1
    index = index.reshape(-1, n_columns)
    rows = []
    for i in index[:, 0].tolist():
        config = result.configs[i]
        rows.append("".join(f"{d[0].upper()}{config[d]}" for d in down))  # L1, L1H3, ...
    if across == "pos":
        if labels is not None and len(labels) == n_columns:
            columns = [f"{p}:{t}" for p, t in enumerate(labels)]
        else:
            columns = [str(p) for p in range(n_columns)]
    elif across == "head":
        columns = [f"H{h}" for h in range(n_columns)]
    else:
        columns = ["all"]
    return Cells(rows, columns, result.scores[index], index)


def restored(result: PatchResult) -> tuple[Tensor, str]:
    """Per configuration, the fraction the hover shows, and what it is. Patching from a
    source: the fraction of the effect restored, (patched - corrupted) / (clean - corrupted)
    (1: the patch alone restores the clean metric; 0: it changes nothing). An ablation of the
    clean run: the fraction of the unablated metric kept, ablated / clean (logit difference
    and probability; NaN where the unablated metric is 0)."""
    scores, target = result.scores.double(), result.target_baseline
    if result.source_baseline is not None:
        gap = result.source_baseline - target
        fraction = (scores - target) / gap if gap else torch.full_like(scores, math.nan)
        return fraction, "of the effect restored"
    if result.metric in ("logit_diff", "prob") and target:
        return scores / target, "of the unablated metric kept"
    return torch.full_like(scores, math.nan), ""


def patch_heatmap(
    result: PatchResult, labels: Sequence[str] | None = None, title: str | None = None
) -> go.Figure:
    """The sweep's heatmap: the metric after each patch, coloured around the unpatched run's
    value. Hover: the cell, its metric, its change from the unpatched run and (`restored`) the
    fraction of the effect restored (sweeps of up to MAX_HOVER_CELLS cells). The axes are
    categories: a click names its cell by its labels (`cells`)."""
    laid = cells(result, labels)
    fraction, meaning = restored(result)
    site = str(result.configs[0].get("site", "")) if result.configs else ""
    unpatched = "corrupted" if result.source_baseline is not None else "unablated"
    text = []
    rows = laid.index.tolist() if laid.index.numel() <= MAX_HOVER_CELLS else []
    scores, fractions = result.scores.tolist(), fraction.tolist()
    for r, row in enumerate(rows):
        line = []
        for c, i in enumerate(row):
            hover = (
                f"{laid.rows[r]} {laid.columns[c]}<br>{result.metric} {scores[i]:.4g} "
                f"({scores[i] - result.target_baseline:+.4g} from the {unpatched} run)"
            )
            if meaning and not math.isnan(fractions[i]):
                hover += f"<br>{fractions[i]:.3f} {meaning}"
            line.append(hover)
        text.append(line)
    n_rows, n_columns = laid.z.shape
    values = laid.z.tolist()
    spread = max((abs(v - result.target_baseline) for row in values for v in row), default=0.0)
    heatmap = go.Heatmap(
        z=values,
        x=laid.columns,
        y=laid.rows,
        colorscale="RdBu",
        zmid=result.target_baseline,
        zmin=result.target_baseline - (spread or 1.0),
        zmax=result.target_baseline + (spread or 1.0),
        colorbar={"title": {"text": result.metric}},
    )
    if n_rows * n_columns <= MAX_HOVER_CELLS:
        heatmap.update(text=text, hovertemplate="%{text}<extra></extra>")
    else:  # a few bytes a cell: the numbers alone
        heatmap.update(hovertemplate="%{y} %{x}<br>" + result.metric + " %{z:.4g}<extra></extra>")
    if n_rows * n_columns <= MAX_TEXT_CELLS:
        heatmap.update(texttemplate="%{z:.2f}", textfont={"size": 9})
    fig = go.Figure(heatmap)
    if title is None:
        baselines = f"{unpatched} {result.target_baseline:.4g}"
        if result.source_baseline is not None:
            baselines += f", clean {result.source_baseline:.4g}"
        title = f"{result.ablation} {site}: {result.metric} ({baselines})"
    # categories (even "0", "1"...), so that a click names its cell by its labels
    fig.update_xaxes(type="category", title=_axis(result, "across"))
    fig.update_yaxes(type="category", autorange="reversed", title=_axis(result, "down"))
    fig.update_layout(
        title=title,
        height=max(280, 22 * n_rows + 160),
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
    )
    return fig


def _axis(result: PatchResult, which: str) -> str:
    dims = list(result.dims)
    across = "pos" if "pos" in dims else "head" if "head" in dims else None
    if which == "across":
        return {"pos": "position", "head": "head", None: ""}[across]
    return " and ".join(d for d in dims if d != across)


@dataclass(frozen=True)
class TopTokens:
    """One run's k most probable next tokens at the read position, best first."""

    label: str  # "clean", "corrupted", "patched"...
    tokens: list[str]
    probs: list[float]


def top_tokens_figure(runs: Sequence[TopTokens], title: str) -> go.Figure:
    """The runs' top tokens side by side, one bar chart each (best at the top)."""
    fig = make_subplots(rows=1, cols=len(runs), subplot_titles=[run.label for run in runs])
    for i, run in enumerate(runs, start=1):
        ranks = [f"{r + 1}. {t}" for r, t in enumerate(run.tokens)]
        fig.add_trace(
            go.Bar(
                x=run.probs,
                y=ranks,
                orientation="h",
                name=run.label,
                text=[f"{p:.3f}" for p in run.probs],
                textposition="auto",
                hovertemplate="%{y}: p = %{x:.4f}<extra>" + run.label + "</extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i)
        fig.update_xaxes(range=[0, 1], title="probability", row=1, col=i)
    longest = max((len(run.tokens) for run in runs), default=1)
    fig.update_layout(
        title=title, height=max(260, 28 * longest + 160), margin={"l": 90, "r": 20, "t": 110}
    )
    return fig
