"""Figures of compiled RASP models: the residual stream decoded to `sop:value` per stage and
position, and the operation each head computes (`rasp.readout`)."""

from __future__ import annotations

import plotly.graph_objects as go

from rasp.readout import RaspLabels, ResidualReadout


def residual_table(
    readout: ResidualReadout, title: str = "", *, new_only: bool = True
) -> go.Figure:
    """Stages (rows: the embedding, then each block's attention and MLP) by positions: in each
    cell the SOp values the residual stream holds there, decoded, as `sop:value` lines; with
    `new_only`, only what that sublayer wrote."""
    positions = [f"{i}:{t}" for i, t in enumerate(readout.positions)]
    columns = [list(readout.stages)]
    for p in range(len(positions)):
        column = []
        for s in range(len(readout.stages)):
            lines = readout.cell(s, p, new_only=new_only)
            column.append("<br>".join(lines) or "·")
        columns.append(column)
    tallest = max((cell.count("<br>") + 1 for column in columns[1:] for cell in column), default=1)
    fig = go.Figure(
        go.Table(
            header={"values": ["stage", *positions], "align": "left", "fill_color": "#ddd"},
            cells={"values": columns, "align": "left", "height": 16 * tallest + 8},
        )
    )
    what = "what each sublayer wrote" if new_only else "every SOp present"
    fig.update_layout(
        title=title
        or f"residual stream decoded ({what}); max one-hot deviation {readout.deviation:.1e}",
        height=min(2400, 80 + len(readout.stages) * (16 * tallest + 10)),
        width=min(1800, 140 + 220 * len(positions)),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def head_table(labels: RaspLabels, title: str = "") -> go.Figure:
    """Every used head (layer, head) with the operation it computes."""
    rows = [(r.layer, r.head, r.name) for row in labels.heads for r in row if r is not None]
    fig = go.Figure(
        go.Table(
            columnwidth=[60, 60, 700],
            header={"values": ["layer", "head", "computes"], "align": "left", "fill_color": "#ddd"},
            cells={
                "values": [list(c) for c in zip(*rows, strict=True)] or [[], [], []],
                "align": "left",
            },
        )
    )
    fig.update_layout(
        title=title or f"heads of {labels.program}",
        height=120 + 28 * len(rows),
        width=900,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig
