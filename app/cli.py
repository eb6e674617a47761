"""The dashboard's `workbench app` command, registered through the `workbench.commands` entry
point so that the core CLI never imports the app package."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from circuits.cli import DEFAULT_STORE
from workbench.cli_options import ThreadsOption


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# the largest request the server reads: a 5 MB PNG as base64 (6.7 MB) and the callback around it
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def register(cli: typer.Typer) -> None:
    @cli.command()
    def app(
        model: Annotated[
            list[str] | None,
            typer.Option(
                help="A built-in model, checkpoint dir or Hugging Face Hub id to offer "
                "(repeatable)."
            ),
        ] = None,
        models_dir: Annotated[
            Path | None, typer.Option(help="Also offer every checkpoint in this folder.")
        ] = None,
        host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine).")] = (
            "127.0.0.1"
        ),
        port: Annotated[int, typer.Option(min=1, max=65535)] = 8050,
        debug: Annotated[
            bool, typer.Option(help="Dash's development server, with reloading and tracebacks.")
        ] = False,
        store: Annotated[
            Path,
            typer.Option(help="The job store the circuits page reads and launches jobs into."),
        ] = DEFAULT_STORE,
        threads: ThreadsOption = 0,
    ) -> None:
        """Serve the dashboard (waitress; --debug: Dash's development server). It offers the
        built-in models, each --model and the checkpoints in --models-dir, and nothing else."""
        from rich.console import Console

        from app.main import create_app
        from workbench.cli import console
        from workbench.devices import use_threads
        from workbench.errors import InputError

        use_threads(threads)
        if debug and not is_loopback(host):
            raise InputError(
                f"--debug serves Flask's debugger, which runs code from the browser: it binds "
                f"the loopback only, not {host}; drop --debug or --host"
            )
        dash_app = create_app(
            model or [], None if models_dir is None else str(models_dir), store=store
        )
        if not is_loopback(host):
            Console(stderr=True, markup=False).print(
                f"warning: binding {host} serves the dashboard to other machines; it has no "
                "authentication. Use --host 127.0.0.1 unless you mean it.",
                style="yellow",
            )
        console.print(f"workbench dashboard on http://{host}:{port}/", soft_wrap=True)
        if debug:
            dash_app.run(host=host, port=port, debug=True)
            return
        from waitress import serve

        serve(
            dash_app.server,
            host=host,
            port=port,
            threads=8,
            max_request_body_size=MAX_REQUEST_BYTES,  # a request carries one upload at most
        )
