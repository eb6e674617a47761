"""The Dash dashboard. It calls the workbench's public API only; figures live in `app.figures`
and are shared with notebooks."""
