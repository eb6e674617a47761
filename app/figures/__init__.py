"""Figures shared by the dashboard, notebooks and the CLI (plotly): one module per kind of view."""
