"""How a callback answers: its figures, or a message on the page in their place."""

from __future__ import annotations

import logging

import plotly.graph_objects as go

from workbench.errors import WorkbenchError

LOG = logging.getLogger(__name__)
MAX_MESSAGE = 500  # an echoed input can be long


def error_figure(message: str) -> go.Figure:
    """What replaces a figure when its request failed: no stale numbers stay on the page."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"color": "crimson"})
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=200, template="none")
    return fig


def answer(compute, *outputs_on_error):
    """Run one callback's work: bad input becomes a message on the page (never an HTTP 500,
    never a server path); anything else is logged here and shown as an internal error. On
    error each output is `fill(message)` for its `outputs_on_error`, and the message last."""
    try:
        return compute()
    except WorkbenchError as exc:
        message = str(exc)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " ..."
    except Exception:
        LOG.exception("dashboard callback failed")
        message = "internal error (logged on the server); try another input"
    return *(fill(message) for fill in outputs_on_error), message
