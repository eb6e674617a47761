"""Figures in a notebook that render without a live widget: `static_figures()` makes each
plotly figure display as plotly's JSON (interactive in Jupyter), as HTML that loads plotly.js
from its CDN (exported pages, viewers that run scripts) and, where kaleido can reach a
Chromium, as a static PNG (viewers that run nothing; Chromium is the test setup's)."""

from __future__ import annotations

import importlib.util


def static_figures() -> str:
    """Set plotly's default renderers as above; returns them."""
    import plotly.io as pio

    renderers = "plotly_mimetype+notebook_connected"
    if importlib.util.find_spec("kaleido") is not None:
        renderers += "+png"
    pio.renderers.default = renderers
    return renderers
