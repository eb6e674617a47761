"""The neuron view (after BertViz's, Vig 2019) of one head and query: the query vector as a
column of cells, each key vector and the elementwise product q * k per key as heatmaps over
[dimension, key] (a diverging scale centred on 0), the score terms per key (one row per term,
then their total) and the pattern row as bars. Mixing kinds show their factors (phi(q) and
phi(k), GLA's decay products, DeltaNet's unit vectors and M row); pooling its fixed row.
Reads a `probes.scores.ScoreTerms`; at most `MAX_KEYS` keys are drawn at a time (`keys`)."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from probes.scores import ScoreTerms
from workbench.errors import InputError

MAX_KEYS = 64  # beyond this the cells are too narrow to read: the caller passes a window
# a scale per kind of value (vectors, decays, products, terms), each centred on 0 but decays
DIVERGING = {"colorscale": "RdBu", "cmid": 0.0, "showscale": False}
COLOUR_AXES = {"keys": "coloraxis", "decay": "coloraxis2", "product": "coloraxis3"}


def key_window(terms: ScoreTerms, keys: slice | None) -> range:
    """The keys drawn: `keys`, or up to `MAX_KEYS` keys around the query (ending at it when
    the keys after it are masked)."""
    n = terms.n_keys
    if keys is None:
        if n <= MAX_KEYS:
            return range(n)
        after_masked = bool(terms.masked[terms.query + 1 :].all())
        end = terms.query + 1 if after_masked else terms.query + MAX_KEYS // 2
        end = min(n, max(end, MAX_KEYS))
        return range(end - MAX_KEYS, end)
    if not isinstance(keys, slice) or keys.step not in (None, 1):
        raise InputError(f"keys must be a slice of consecutive keys (step 1), got {keys!r}")
    window = range(*keys.indices(n))
    if not 0 < len(window) <= MAX_KEYS:
        raise InputError(
            f"keys {keys!r} select {len(window)} of the {n} keys: select 1..{MAX_KEYS}"
        )
    return window


def cells(t: Tensor) -> list:
    """Values for plotly (a row, or rows of them): NaN and infinities (masked keys) as None,
    drawn as gaps."""
    return [_cell(float(v)) if v.ndim == 0 else cells(v) for v in t]


def _cell(v: float) -> float | None:
    return v if math.isfinite(v) else None


def neuron_view(
    terms: ScoreTerms, labels: list[str], *, keys: slice | None = None, title: str = ""
) -> go.Figure:
    """The neuron view of `terms`; `labels` name every key position (token strings)."""
    if len(labels) != terms.n_keys:
        raise InputError(f"{len(labels)} labels for {terms.n_keys} keys: pass one per key")
    window = key_window(terms, keys)
    at = slice(window.start, window.stop)
    x = [f"{i}:{labels[i]}" for i in window]  # positions keep repeated tokens apart
    panels = _vector_panels(terms, at)
    rows = len(panels) + (1 if terms.terms else 0) + 1
    heights = [_height(z) for _, z, _ in panels]
    heights += [24 * (len(terms.terms) + 2)] * bool(terms.terms) + [140]
    fig = make_subplots(
        rows=rows,
        cols=2,
        column_widths=[0.06, 0.94],
        # plotly types shared_xaxes as a bool; its docs also take "columns", "rows" or "all"
        shared_xaxes="columns",  # pyright: ignore[reportArgumentType]
        horizontal_spacing=0.03,
        vertical_spacing=0.04,
        row_heights=[h / sum(heights) for h in heights],
        subplot_titles=_subtitles(terms, panels),
    )
    for row, (name, z, hover) in enumerate(panels, start=1):
        dims = list(range(len(z)))
        fig.add_trace(
            go.Heatmap(
                z=cells(z), x=x, y=dims, name=name, hovertemplate=hover, coloraxis=COLOUR_AXES[name]
            ),
            row=row,
            col=2,
        )
        fig.update_yaxes(autorange="reversed", row=row)
        fig.update_yaxes(showticklabels=False, row=row, col=2)
        if name == "decay":
            continue
        fig.update_yaxes(title=terms.space, row=row, col=1)
        assert terms.query_vector is not None  # vector panels are drawn for kinds with queries
        fig.add_trace(
            go.Heatmap(
                z=cells(terms.query_vector[:, None]),
                x=["q"],
                y=dims,
                name="query",
                coloraxis="coloraxis",
                hovertemplate="dim %{y}<br>q %{z:.4f}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    if terms.terms:
        _add_terms(fig, terms, at, x, len(panels) + 1)
    fig.add_trace(
        go.Bar(
            x=x,
            y=cells(terms.pattern[at]),
            name="pattern",
            marker_color="#4c72b0",
            hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>",
        ),
        row=rows,
        col=2,
    )
    fig.update_xaxes(tickangle=-60, tickfont={"size": 10}, row=rows, col=2)
    fig.update_layout(
        title=title or _title(terms, labels),
        coloraxis=DIVERGING,  # q and k: one scale, so that their cells compare
        coloraxis2={"colorscale": "Blues", "cmin": 0.0, "cmax": 1.0, "showscale": False},
        coloraxis3=DIVERGING,  # the products
        coloraxis4=DIVERGING,  # the score terms
        height=min(2400, sum(heights) + 60 * rows + 120),
        width=min(1800, max(640, (40 if len(x) <= 32 else 18) * len(x) + 260)),
        showlegend=False,
        margin={"l": 60, "r": 20, "t": 90, "b": 60},
    )
    return fig


def _vector_panels(terms: ScoreTerms, at: slice) -> list[tuple[str, Tensor, str]]:
    """(name, [dim, key] values, hover) for each key-by-dimension heatmap of this kind."""
    if terms.key_vectors is None:
        return []
    assert terms.product is not None  # a kind with key vectors multiplies them by the query

    def hover(what: str) -> str:
        return "key %{x}<br>dim %{y}<br>" + what + " %{z:.4f}<extra></extra>"

    panels = [("keys", terms.key_vectors[at].T, hover("k"))]
    if terms.decay is not None:
        panels.append(("decay", terms.decay[at].T, hover("decay")))
    panels.append(("product", terms.product[at].T, hover("q * k")))
    return panels


def _subtitles(terms: ScoreTerms, panels: list) -> list[str]:
    what = {
        "keys": "key vectors k_j",
        "decay": "decay products over (j, i]",
        "product": "q * k" + (" * decay" if terms.decay is not None else "") + " per dimension",
    }
    out = []
    for name, _, _ in panels:
        out += ["q" if name != "decay" else "", what[name]]
    if terms.terms:
        out += ["", "score terms per key"]
    return [*out, "", f"pattern row ({terms.combine})"]


def _add_terms(fig: go.Figure, terms: ScoreTerms, at: slice, x: list[str], row: int) -> None:
    names = list(terms.terms)
    values = [terms.terms[n][at] for n in names]
    if terms.scores is not None and len(names) > 1:
        names.append("total")
        values.append(terms.scores[at])
    z = [cells(v) for v in values]
    text = [["" if c is None else f"{c:.2f}" for c in r] for r in z]
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=x,
            y=names,
            name="terms",
            text=text,
            texttemplate="%{text}" if len(x) <= 32 else None,
            coloraxis="coloraxis4",
            hovertemplate="key %{x}<br>%{y} %{z:.4f}<extra></extra>",
        ),
        row=row,
        col=2,
    )
    fig.update_yaxes(autorange="reversed", row=row, col=2)


def _height(z: Tensor) -> int:
    """Pixels for a heatmap of `z.shape[0]` dimensions: readable, never taller than 640."""
    return int(min(640, max(120, 10 * z.shape[0])))


def _title(terms: ScoreTerms, labels: list[str]) -> str:
    head = f"L{terms.layer}H{terms.head}"
    if terms.kv_head is not None and terms.kv_head != terms.head:
        head += f" (key head {terms.kv_head})"
    title = f"neuron view: {head}, query {terms.query}:{labels[terms.query]} ({terms.kind})"
    if terms.normaliser is not None:
        title += f", row normaliser {terms.normaliser:.4g}"
    masked = int(terms.masked.sum())
    note = f"vectors: {terms.vectors}" + (f"; {masked} masked keys blank" if masked else "")
    return f"{title}<br><sup>{note}</sup>"
