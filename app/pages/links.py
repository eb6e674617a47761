"""Links between pages: what a page's callback sets to open a view of another page."""

from __future__ import annotations

from dash import Output


def head_outputs() -> list[Output]:
    """The outputs that open a head in the attention view: add them to a callback's outputs
    (which then prevents its initial call) and return `open_head(layer, head)` for them."""
    return [
        Output("page", "value", allow_duplicate=True),
        Output("tabs", "value", allow_duplicate=True),
        Output("overview", "clickData", allow_duplicate=True),
    ]


def open_head(layer: int, head: int) -> tuple[str, str, dict]:
    """The attention page, its attention tab, and a click on the head's model-view cell."""
    return "attention", "attention", {"points": [{"x": f"H{head}", "y": f"L{layer}"}]}
