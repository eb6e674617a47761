"""The dashboard's pages, one tab each at the top of the page. A page module has `NAME` (its
tab's value), `TITLE` (its tab's label), `layout()` and `register(app, context)`; its callbacks
compute only while the page is shown (`Input("page", "value")`), so a page never holds a
model's lock for a browser that does not show it. `PAGES` lists them in tab order."""

from __future__ import annotations

from app.pages import anatomy, attention, circuits, patching, probes, program, rasp

PAGES = (attention, patching, circuits, probes, rasp, program, anatomy)
