"""A learned Transformer Program beside its frozen model: every variable (rows) at every
position of one input, the program's value and the value the model's residual stream holds in
that variable's slot, and for each closest-match head the key each query reads."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go


@dataclass(frozen=True)
class Row:
    name: str
    how: str  # what computes it (the listing's operation, short)
    program: tuple[str, ...]  # per position
    model: tuple[str, ...]


def program_beside_model(rows: list[Row], positions: list[str], title: str) -> go.Figure:
    """One row per variable; a cell shows the shared value, or `program ≠ model` in red
    where they differ."""
    cells, colours = [[r.name for r in rows], [r.how for r in rows]], [["white"] * len(rows)] * 2
    for p in range(len(positions)):
        column, colour = [], []
        for r in rows:
            same = r.program[p] == r.model[p]
            column.append(r.program[p] if same else f"{r.program[p]} ≠ {r.model[p]}")
            colour.append("white" if same else "#f8c4c4")
        cells.append(column)
        colours.append(colour)
    fig = go.Figure(
        go.Table(
            columnwidth=[130, 260, *[70] * len(positions)],
            header={
                "values": ["variable", "computed by", *positions],
                "align": "left",
                "fill_color": "#ddd",
            },
            cells={"values": cells, "align": "left", "fill_color": colours},
        )
    )
    fig.update_layout(
        title=title,
        height=min(2400, 140 + 22 * len(rows)),
        width=min(1800, 460 + 80 * len(positions)),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig
