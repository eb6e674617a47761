"""The dashboard's `workbench app` command, registered through the `workbench.commands` entry
point so that the core CLI never imports the app package."""

from __future__ import annotations

from typing import Annotated

import typer


def register(cli: typer.Typer) -> None:
    @cli.command()
    def app(
        model: Annotated[str | None, typer.Option(help="Built-in model or checkpoint dir.")] = None,
        host: Annotated[str, typer.Option()] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535)] = 8050,
        debug: Annotated[bool, typer.Option()] = False,
    ) -> None:
        """Serve the dashboard on a built-in model (or a checkpoint)."""
        from app.main import create_app
        from workbench.cli import console, fail
        from workbench.errors import WorkbenchError

        try:
            dash_app = create_app(default_model=model)
        except WorkbenchError as exc:
            raise fail(exc) from None
        console.print(f"workbench dashboard on http://{host}:{port}/")
        dash_app.run(host=host, port=port, debug=debug)
