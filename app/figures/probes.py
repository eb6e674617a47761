"""Probe figures (plotly), shared by the dashboard's probes page, notebooks and the probe
commands' `--html`: linear-probe scores per layer with the control task and selectivity
(`probes.linear.ProbeResult`); the position/context decomposition
(`probes.decompose.Decomposition`): variance shares per layer, the positional PCA spiral in 2-D
or 3-D, the contexts' clusters and the principal angles between the two subspaces; neuron
paths drawn layer by layer with their joint influence and suppression drop against the
baselines (`probes.neuron_path.PathReport`); and inversion: the recovered tokens with their
per-position distances, margins and ambiguity, and the collision test
(`probes.invert.InversionReport`)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes.decompose import Decomposition, LayerGeometry
from probes.invert import Collisions, InversionReport
from probes.linear import ProbeResult
from probes.neuron_path import PathComparison, PathReport
from workbench.errors import InputError

SHARES = {"position": "#1f77b4", "context": "#ff7f0e", "residual": "#bbbbbb"}
# colour and marker of each method's path (the joint one open and large: baselines that pick
# the same neuron show inside it)
METHODS = {
    "joint": ("#d62728", "circle-open", 17),
    "activation": ("#1f77b4", "square", 8),
    "individual": ("#2ca02c", "diamond", 9),
}
STATUS = {"unique": "#2ca02c", "found": "#1f77b4", "ambiguous": "#ff7f0e", "not found": "#d62728"}


def probe_figure(result: ProbeResult) -> go.Figure:
    """Train, held-out and control-task scores per layer as lines, selectivity (held-out -
    control) as bars."""
    score = "accuracy" if result.kind == "logistic" else "R^2"
    layers = list(result.layers)
    fig = go.Figure()
    fig.add_bar(
        x=layers,
        y=list(result.selectivity),
        name="selectivity (test - control)",
        marker_color="#c7c7c7",
        hovertemplate="layer %{x}<br>selectivity %{y:.3f}<extra></extra>",
    )
    lines = {"train": result.train, "test": result.test, "control": result.control}
    for (name, values), dash in zip(lines.items(), ("dot", "solid", "dash"), strict=True):
        fig.add_scatter(
            x=layers,
            y=list(values),
            name=name if name != "control" else "control task",
            mode="lines+markers",
            line={"dash": dash},
            hovertemplate=f"layer %{{x}}<br>{name} {score} %{{y:.3f}}<extra></extra>",
        )
    fig.update_xaxes(title="layer", tickmode="array", tickvals=layers)
    fig.update_yaxes(title=score)
    fig.update_layout(
        title=(
            f"{result.kind} probes at {result.site}: {score} per layer ({result.n_train} "
            f"training, {result.n_test} held-out examples)"
        ),
        height=420,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def chosen_layer(result: Decomposition, layer: int | None) -> LayerGeometry:
    """The geometry of `layer` (None: the last one decomposed)."""
    if layer is None:
        return result.layers[-1]
    for geometry in result.layers:
        if geometry.layer == layer:
            return geometry
    shown = ", ".join(str(g.layer) for g in result.layers)
    raise InputError(f"layer {layer} was not decomposed; choose one of: {shown}")


def decompose_figure(result: Decomposition, layer: int | None = None, dims: int = 3) -> go.Figure:
    """Four panels: the variance shares per layer; the positional spiral of `layer` (None:
    the last) on its top principal components, in `dims` (2 or 3) dimensions; the contexts'
    vectors ctx[c] on their top 2 components; the principal-angle cosines between the
    positional and context subspaces, per layer."""
    if dims not in (2, 3):
        raise InputError(f"the spiral is drawn in 2 or 3 dimensions, not {dims}")
    g = chosen_layer(result, layer)
    ari = "" if g.ctx_ari is None else f", ARI {g.ctx_ari:.3f} against the labels"
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"type": "xy"}, {"type": "scene" if dims == 3 else "xy"}], [{}, {}]],
        subplot_titles=[
            "variance shares per layer",
            f"positional spiral, layer {g.layer} (rank {g.pos_rank}, smoothness "
            f"{g.pos_smoothness:.2f})",
            f"contexts, layer {g.layer}{ari}",
            "principal angles: position vs context subspaces",
        ],
        vertical_spacing=0.14,
        horizontal_spacing=0.1,
    )
    _shares(fig, result)
    _spiral(fig, g, dims)
    ctx = [row + (0.0,) * (2 - len(row)) for row in g.ctx_pca]
    fig.add_scatter(
        x=[c[0] for c in ctx],
        y=[c[1] for c in ctx],
        mode="markers",
        name="contexts ctx[c]",
        marker={"size": 6, "color": "#ff7f0e", "opacity": 0.7},
        text=[f"context {i}" for i in range(len(ctx))],
        hovertemplate="%{text}<br>(%{x:.3g}, %{y:.3g})<extra></extra>",
        row=2,
        col=1,
    )
    fig.update_xaxes(title="context PC1", row=2, col=1)
    anchor = fig.data[-1].xaxis  # pyright: ignore[reportAttributeAccessIssue]  # plotly types traces as BaseFigure
    fig.update_yaxes(title="context PC2", scaleanchor=anchor, row=2, col=1)
    for geometry in result.layers:
        fig.add_scatter(
            x=list(range(1, len(geometry.cosines) + 1)),
            y=list(geometry.cosines),
            mode="lines+markers",
            name=f"cosines, layer {geometry.layer}",
            legendgroup="angles",
            hovertemplate=f"layer {geometry.layer}<br>angle %{{x}}: cosine %{{y:.3f}}"
            "<extra></extra>",
            row=2,
            col=2,
        )
    fig.update_xaxes(title="principal angle", dtick=1, row=2, col=2)
    fig.update_yaxes(title="cosine", range=[0, 1.05], row=2, col=2)
    fig.update_layout(
        title=(
            f"position/context decomposition at {result.site} ({result.n_contexts} contexts "
            f"of {result.n_positions} positions)"
        ),
        height=860,
        barmode="stack",
    )
    return fig


def _shares(fig: go.Figure, result: Decomposition) -> None:
    layers = [g.layer for g in result.layers]
    stats = [
        [g.pos_rank, g.pos_smoothness, max(g.cosines, default=0.0)] for g in result.layers
    ]  # what the CLI's table shows next to the shares
    for part, color in SHARES.items():
        fig.add_bar(
            x=layers,
            y=[g.share[part] for g in result.layers],
            name=part,
            marker_color=color,
            customdata=stats,
            hovertemplate=f"layer %{{x}}: {part} %{{y:.3f}}<br>positional rank %{{customdata[0]}}"
            ", smoothness %{customdata[1]:.2f}<br>largest cosine %{customdata[2]:.3f}"
            "<extra></extra>",
            row=1,
            col=1,
        )
    fig.update_xaxes(title="layer", tickmode="array", tickvals=layers, row=1, col=1)
    fig.update_yaxes(title="share of the variance", range=[0, 1], row=1, col=1)


def _spiral(fig: go.Figure, g: LayerGeometry, dims: int) -> None:
    """pos[t] on the top principal components, a line through the positions in order."""
    coords = [row + (0.0,) * (3 - len(row)) for row in g.pos_pca]  # fewer than 3 components
    n = len(coords)
    axes = [
        f"PC{i + 1} ({g.pos_explained[i]:.0%})" if i < len(g.pos_explained) else f"PC{i + 1}"
        for i in range(3)
    ]
    style = {
        "mode": "lines+markers",
        "name": "positions pos[t]",
        "marker": {"color": list(range(n)), "colorscale": "Viridis", "size": 5},
        "line": {"color": "#888"},
        "text": [f"position {t}" for t in range(n)],
    }
    if dims == 3:
        fig.add_trace(
            go.Scatter3d(
                x=[c[0] for c in coords],
                y=[c[1] for c in coords],
                z=[c[2] for c in coords],
                hovertemplate="%{text}<br>(%{x:.3g}, %{y:.3g}, %{z:.3g})<extra></extra>",
                **style,
            ),
            row=1,
            col=2,
        )
        fig.update_scenes(
            xaxis_title=axes[0], yaxis_title=axes[1], zaxis_title=axes[2], row=1, col=2
        )
        return
    fig.add_scatter(
        x=[c[0] for c in coords],
        y=[c[1] for c in coords],
        hovertemplate="%{text}<br>(%{x:.3g}, %{y:.3g})<extra></extra>",
        row=1,
        col=2,
        **style,
    )
    fig.update_xaxes(title=axes[0], row=1, col=2)
    anchor = fig.data[-1].xaxis  # pyright: ignore[reportAttributeAccessIssue]  # plotly types traces as BaseFigure
    fig.update_yaxes(title=axes[1], scaleanchor=anchor, row=1, col=2)


def neuron_path_figure(report: PathReport) -> go.Figure:
    """One row per example: left, each method's path drawn layer by layer (its neuron in
    each layer); right, each path's joint influence and the drop of the output when its
    neurons are suppressed, against the random paths (each, and their mean)."""
    rows = len(report.comparisons)
    titles = []
    for i, c in enumerate(report.comparisons):
        titles += [f"example {i}: target {c.target}, p = {c.output:.4f}", "influence and drop"]
    fig = make_subplots(
        rows=rows,
        cols=2,
        subplot_titles=titles,
        column_widths=[0.55, 0.45],
        vertical_spacing=min(0.3 / max(rows - 1, 1), 0.12),
    )
    for i, c in enumerate(report.comparisons, start=1):
        _paths(fig, c, i)
        _evaluation(fig, c, i)
    fig.update_layout(
        title="influential neuron paths (joint search against the baselines)",
        height=120 + 340 * rows,
        barmode="group",
    )
    return fig


def _paths(fig: go.Figure, c: PathComparison, row: int) -> None:
    for path in c.paths:
        layers = list(range(len(path.neurons)))
        color, symbol, size = METHODS.get(path.method, ("#333", "circle", 8))
        fig.add_scatter(
            x=layers,
            y=list(path.neurons),
            customdata=list(path.scores),
            mode="lines+markers",
            name=f"{path.method} path",
            legendgroup=path.method,
            showlegend=row == 1,
            marker={"size": size, "color": color, "symbol": symbol, "line": {"width": 2}}
            if symbol.endswith("-open")
            else {"size": size, "color": color, "symbol": symbol},
            line={"dash": "solid" if path.method == "joint" else "dot"},
            hovertemplate=f"{path.method}: layer %{{x}}, neuron %{{y}}<br>score "
            "%{customdata:.4g}<extra></extra>",
            row=row,
            col=1,
        )
        fig.update_xaxes(title="layer", tickmode="array", tickvals=layers, row=row, col=1)
    fig.update_yaxes(title="neuron", row=row, col=1)


def _evaluation(fig: go.Figure, c: PathComparison, row: int) -> None:
    names = [p.method for p in c.paths]
    influence, drop = list(c.influence), list(c.drop)
    n = len(c.random_drop)
    if n:
        names.append(f"random (mean of {n})")
        influence.append(sum(c.random_influence) / n)
        drop.append(sum(c.random_drop) / n)
    for label, values, color in (
        ("joint influence", influence, "#9467bd"),
        ("drop when suppressed", drop, "#8c564b"),
    ):
        fig.add_bar(
            x=names,
            y=values,
            name=label,
            legendgroup=label,
            showlegend=row == 1,
            marker_color=color,
            hovertemplate=f"%{{x}}<br>{label} %{{y:.4g}}<extra></extra>",
            row=row,
            col=2,
        )
    if n:
        fig.add_scatter(
            x=[names[-1]] * n,
            y=list(c.random_drop),
            mode="markers",
            name="random paths' drops",
            legendgroup="random",
            showlegend=row == 1,
            marker={"color": "#333", "size": 5, "symbol": "x"},
            hovertemplate="a random path<br>drop %{y:.4g}<extra></extra>",
            row=row,
            col=2,
        )
    fig.update_yaxes(title="change of p", row=row, col=2)


def inversion_figure(report: InversionReport) -> go.Figure:
    """One row per inverted sequence: each position's recovered token (its label; colour:
    its status), the distance of the accepted state to the target, the separation margin
    (certified runs) and the tolerance, on a log scale; the hover lists every accepted
    token (several: ambiguous). A last row: the collision test's smallest distance between
    two prompts' last-token states, per layer."""
    n = len(report.inversions)
    rows = n + (report.collisions is not None)
    titles = [
        f"sequence {i}: exact recovery {rate:.3f}" for i, rate in enumerate(report.recoveries)
    ]
    if report.collisions is not None:
        clash = report.collisions
        titles.append(f"collisions over {clash.n_pairs} pairs of {clash.n_prompts} prompts")
    fig = make_subplots(
        rows=rows, cols=1, subplot_titles=titles, vertical_spacing=min(0.3 / max(rows - 1, 1), 0.1)
    )
    for row, (found, truth) in enumerate(zip(report.inversions, report.truth, strict=True), 1):
        _inversion_row(fig, report, found, truth, row)
    if report.collisions is not None:
        _collision_row(fig, report.collisions, rows)
    first = report.inversions[0]
    fig.update_layout(
        title=(
            f"SipIt at {first.site} of layer {first.layer}: exact recovery "
            f"{report.recovery:.3f} over {n} sequence{'s' * (n != 1)}"
        ),
        height=140 + 300 * rows,
    )
    return fig


def _name(report: InversionReport, token: int) -> str:
    if token < 0:
        return "?"
    return report.names.get(token, str(token))


def _inversion_row(fig: go.Figure, report: InversionReport, found, truth, row: int) -> None:
    labels = [f"{t}:{_name(report, token)}" for t, token in enumerate(found.tokens)]
    hover = []
    for t, token in enumerate(found.tokens):
        accepted = ", ".join(_name(report, a) for a in found.accepted[t]) or "none"
        margin = found.margins[t]
        hover.append(
            f"position {t}: {found.status[t]}<br>true {_name(report, truth[t])}, recovered "
            f"{_name(report, token)}<br>accepted: {accepted}<br>distance "
            f"{found.distances[t]:.3g}"
            + ("" if margin is None else f", margin {margin:.3g}")
            + f"<br>{found.verified[t]} tokens verified"
        )
    first = row == 1
    if any(m is not None for m in found.margins):
        fig.add_bar(
            x=labels,
            y=list(found.margins),
            name="margin (nearest other token's state)",
            legendgroup="margin",
            showlegend=first,
            marker_color="#c7c7c7",
            hovertext=hover,
            hoverinfo="text",
            row=row,
            col=1,
        )
    fig.add_scatter(
        x=labels,
        y=list(found.distances),
        mode="markers",
        name="distance of the accepted state",
        legendgroup="distance",
        showlegend=first,
        marker={"size": 10, "color": [STATUS.get(s, "#333") for s in found.status]},
        hovertext=hover,
        hoverinfo="text",
        row=row,
        col=1,
    )
    for status, color in STATUS.items():  # the colours' legend
        if first:
            fig.add_scatter(
                x=[None], y=[None], mode="markers", name=status, legendgroup=status,
                marker={"size": 10, "color": color}, row=row, col=1,
            )  # fmt: skip
    fig.add_scatter(
        x=labels,
        y=[found.tolerance] * len(labels),
        mode="lines",
        name="tolerance",
        legendgroup="tolerance",
        showlegend=first,
        line={"color": "#d62728", "dash": "dash", "width": 1},
        hoverinfo="skip",
        row=row,
        col=1,
    )
    fig.update_xaxes(type="category", title="position:recovered token", row=row, col=1)
    fig.update_yaxes(type="log", title="L2 distance", row=row, col=1)


def _collision_row(fig: go.Figure, clash: Collisions, row: int) -> None:
    layers = [f"L{layer}" for layer in clash.layers]
    fig.add_bar(
        x=layers,
        y=list(clash.min_distance),
        name="smallest distance between two prompts",
        marker_color="#9467bd",
        customdata=[
            [f"{i} and {j}", b] for (i, j), b in zip(clash.closest, clash.below, strict=True)
        ],
        hovertemplate="%{x}: %{y:.3g} (prompts %{customdata[0]})<br>%{customdata[1]} pairs "
        f"closer than {clash.threshold:g}<extra></extra>",
        row=row,
        col=1,
    )
    fig.add_scatter(
        x=layers,
        y=[clash.threshold] * len(layers),
        mode="lines",
        name=f"collision threshold {clash.threshold:g}",
        line={"color": "#d62728", "dash": "dot", "width": 1},
        hoverinfo="skip",
        row=row,
        col=1,
    )
    fig.update_xaxes(type="category", title=f"layer ({clash.site})", row=row, col=1)
    fig.update_yaxes(type="log", title="L2 distance", row=row, col=1)
