"""Figures of what the model predicts (plotly), shared by the dashboard and notebooks: the
top-k tokens at each position, the logit lens grid and the direct logit attribution bars.
They draw the results of `probes.lens` and `probes.logit_attribution`; token strings come
from the caller, as the prompt's `labels` and a `decode` (a callable id -> str, or a list of
token strings indexed by id)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from probes.lens import LogitLens, TopPredictions
from probes.logit_attribution import LogitAttribution
from workbench.errors import InputError

Decode = Callable[[int], str] | Sequence[str]

# the bar chart's groups: each layer's heads get a trace of their own
GROUPS = {
    "embed": "embeddings",
    "pos_embed": "embeddings",
    "mlp": "MLPs",
    "attn_bias": "biases",
    "norm_bias": "biases",
    "unembed_bias": "biases",
}


def decoder(decode: Decode) -> Callable[[int], str]:
    """`decode` as a function; a vocabulary list shows an id it lacks as the number."""
    if callable(decode):
        return decode
    vocab = list(decode)
    return lambda i: vocab[i] if 0 <= i < len(vocab) else str(i)


def position_labels(labels: Sequence[str], n: int) -> list[str]:
    """`i:token` for each position (repeated tokens stay apart)."""
    if len(labels) != n:
        raise InputError(f"{len(labels)} token labels for {n} positions: give one per position")
    return [f"{i}:{t}" for i, t in enumerate(labels)]


def top_k_table(result: TopPredictions, labels: Sequence[str], decode: Decode) -> go.Figure:
    """One row per position, one column per rank: the predicted token as text, coloured by
    its probability."""
    word = decoder(decode)
    rows = position_labels(labels, len(result.tokens))
    k = result.ids.shape[1]
    text = [[word(i) for i in row] for row in result.ids.tolist()]
    fig = go.Figure(
        go.Heatmap(
            z=result.probs.tolist(),
            x=[f"#{r + 1}" for r in range(k)],
            y=rows,
            text=text,
            texttemplate="%{text}",
            customdata=result.ids.tolist(),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar={"title": "p"},
            hovertemplate="position %{y}<br>rank %{x}: %{text} (id %{customdata})"
            "<br>probability %{z:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title="position")
    fig.update_xaxes(title="rank", side="top")
    fig.update_layout(
        title=f"top {k} predictions of the {result.predicts}",
        height=max(260, 26 * len(rows) + 140),
        width=max(360, 90 * k + 200),
        margin={"l": 100, "r": 20, "t": 100, "b": 20},
    )
    return fig


def logit_lens_grid(
    result: LogitLens, labels: Sequence[str], decode: Decode, *, colour: str = "target"
) -> go.Figure:
    """Rows: the residual stream before each layer and after the last; columns: positions.
    Each cell shows the top token there; its colour is the target's probability
    (`colour='target'`, when the lens has a target) or the top token's (`'top'`)."""
    if colour not in ("target", "top"):
        raise InputError(f"colour must be 'target' or 'top', got {colour!r}")
    word = decoder(decode)
    columns = position_labels(labels, len(result.tokens))
    coloured = result.target_probs if colour == "target" else None  # None: by the top token
    by_target = coloured is not None
    z = coloured if coloured is not None else result.top_probs
    target = result.target_probs if result.target_probs is not None else result.top_probs * 0
    tops = [[word(i) for i in row] for row in result.top_tokens.tolist()]
    custom = [
        [[p, q] for p, q in zip(top, tgt, strict=True)]
        for top, tgt in zip(result.top_probs.tolist(), target.tolist(), strict=True)
    ]
    hover = "%{y} at %{x}<br>top token %{text}: p=%{customdata[0]:.4f}"
    if result.target is not None:
        hover += "<br>target: p=%{customdata[1]:.4f}"
    fig = go.Figure(
        go.Heatmap(
            z=z.tolist(),
            x=columns,
            y=list(result.labels),
            text=tops,
            texttemplate="%{text}",
            customdata=custom,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar={"title": "p(target)" if by_target else "p(top)"},
            hovertemplate=hover + "<extra></extra>",
        )
    )
    if by_target and result.target is not None:  # a lens with target probabilities has one
        shown = {word(t) for t in result.target}
        what = f"the target {next(iter(shown))!r}" if len(shown) == 1 else "each position's target"
    else:
        what = "the top token"
    fig.update_yaxes(autorange="reversed", title="residual stream")
    fig.update_xaxes(title="position", tickangle=-60)
    fig.update_layout(
        title=f"logit lens ({result.predicts}): top token, coloured by the probability of {what}",
        height=max(260, 32 * len(result.labels) + 160),
        width=min(1800, max(420, 56 * len(columns) + 200)),
        margin={"l": 90, "r": 20, "t": 80, "b": 80},
    )
    return fig


def dla_bars(result: LogitAttribution, decode: Decode) -> go.Figure:
    """One bar per component in forward order, each layer's heads a group of their own, then
    MLPs, embeddings and biases; the title gives their sum and the model's logit (difference),
    which it equals."""
    word = decoder(decode)
    groups: dict[str, list] = {}
    for c in result.components:
        group = f"L{c.layer} heads" if c.kind == "head" else GROUPS[c.kind]
        groups.setdefault(group, []).append(c)
    fig = go.Figure(
        [
            go.Bar(
                x=[c.name for c in parts],
                y=[c.value for c in parts],
                name=group,
                hovertemplate="%{x}: %{y:.4f}<extra>" + group + "</extra>",
            )
            for group, parts in groups.items()
        ]
    )
    target = repr(word(result.answer))
    if result.wrong is not None:
        target += f" − {word(result.wrong)!r}"
    what = "logit" if result.wrong is None else "logit difference"
    fig.update_xaxes(
        categoryorder="array",
        categoryarray=[c.name for c in result.components],
        tickangle=-60,
    )
    fig.update_yaxes(title=f"direct effect on the {what}", zeroline=True)
    fig.update_layout(
        title=f"direct logit attribution to {target} at position {result.position}:<br>"
        f"sum {result.total:.4f}, the model's {what} {result.logit:.4f}",
        barmode="relative",
        height=460,
        width=min(1800, max(520, 16 * len(result.components) + 240)),
        margin={"l": 70, "r": 20, "t": 80, "b": 110},
    )
    return fig
