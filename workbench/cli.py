"""The `workbench` command line. Thin: each command calls the same public functions as notebooks.

Heavy imports (torch, TransformerLens, Dash) happen inside the commands that need them.
Packages above the core (the dashboard, later circuits and RASP) add their own commands through
the `workbench.commands` entry-point group, so the core never imports them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.cli_options import SEED_RANGE, DeviceOption, ThreadsOption
from workbench.errors import InputError, WorkbenchError

cli = typer.Typer(
    help="Mechanistic-interpretability workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# user text (names, paths, error messages) is printed as it is, never read as rich markup
console = Console(markup=False, emoji=False)


def fail(exc: Exception) -> typer.Exit:
    """Print `exc` as a one-line error and exit with status 2 (bad input). The one place the
    CLI reports errors: every command's callback runs inside `_error_boundary`."""
    message = Text.assemble(("error:", "red"), " ", str(exc))
    Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True).print(message)
    return typer.Exit(code=2)


def _error_boundary(callback: Callable) -> Callable:
    """Bad input (`WorkbenchError`, or a path the operating system refuses) ends as `fail`
    does; Ctrl-C ends with status 130 and what was kept (e.g. training's resume point), never
    a traceback."""

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except WorkbenchError as exc:
            raise fail(exc) from None
        except OSError as exc:  # a path the system refuses: too long, no permission, full disk
            where = f" ({exc.filename})" if exc.filename else ""
            raise fail(OSError(f"{exc.strerror or exc}{where}; check the path")) from None
        except KeyboardInterrupt as exc:
            note = str(exc) or "interrupted"
            Console(stderr=True, markup=False, emoji=False, soft_wrap=True).print(note)
            raise typer.Exit(code=130) from None

    return guarded


@cli.command()
def variants(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    tiny: Annotated[bool, typer.Option(help="Include the tiny test twins.")] = False,
) -> None:
    """List the architecture presets with their papers."""
    from workbench.presets import list_presets

    presets = list_presets(include_tiny=tiny)
    if as_json:
        print(json.dumps([p.to_json() for p in presets], indent=1))
        return
    table = Table("name", "description", "paper", title=f"{len(presets)} presets")
    for p in presets:
        table.add_row(p.name, p.description, p.paper)
    console.print(table)


@cli.command()
def tasks(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in synthetic tasks."""
    from workbench.tasks import list_tasks

    rows = [{"name": t.name, "description": t.description} for t in list_tasks()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("name", "description", title="tasks")
    for r in rows:
        table.add_row(r["name"], r["description"])
    console.print(table)


@cli.command()
def hooks(
    preset: Annotated[str, typer.Argument(help="Preset name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the block diagram of its wiring as an HTML page."),
    ] = None,
) -> None:
    """List a preset's hook points and their dimensions, from its config alone."""
    from workbench.presets import get_preset
    from workbench.schema import hook_schema

    try:
        config = get_preset(preset).config
        specs = hook_schema(config)
        if html is not None:
            from workbench.html import write_figure

            write_figure("anatomy", config, html)
    except WorkbenchError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps([s.to_json() for s in specs], indent=1))
        return
    table = Table("hook point", "dims", "shape", title=f"{preset}: {len(specs)} hook points")
    for s in specs:
        table.add_row(s.name, " ".join(s.dims), str(tuple(s.shape)))
    console.print(table)


@cli.command()
def train(
    preset: Annotated[str, typer.Option(help="Architecture preset (workbench variants).")],
    task: Annotated[str, typer.Option(help="Built-in task (workbench tasks).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 2000,
    seed: Annotated[int, typer.Option(**SEED_RANGE, help="Seed of init and data.")] = 0,
    batch_size: Annotated[
        int, typer.Option(min=0, help="Batch size; 0 = the whole split (modadd).")
    ] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    schedule: Annotated[str, typer.Option(help="constant or cosine (to 10% of lr).")] = "constant",
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Steps between resume points.")
    ] = 500,
    task_param: Annotated[
        list[str], typer.Option("--task-param", help="KEY=VALUE, repeatable.")
    ] = [],  # noqa: B006
    override: Annotated[list[str], typer.Option("--set", help="Config override KEY=VALUE.")] = [],  # noqa: B006
    device: DeviceOption = "auto",
    threads: ThreadsOption = 0,
    force: Annotated[
        bool, typer.Option(help="Start over: delete the model or resume point a run left in -o.")
    ] = False,
) -> None:
    """Train a preset on a task; resumes an interrupted run in the same directory (a resume
    point every --checkpoint-every steps, and one on Ctrl-C)."""
    from workbench.tasks import make_task
    from workbench.training import TrainSettings
    from workbench.training import train as run_training

    try:
        threads_option(threads)
        task_obj = make_task(task, **_parse_pairs(task_param))
        settings = TrainSettings(
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            schedule=schedule,
            checkpoint_every=checkpoint_every,
        )
        result = run_training(
            preset,
            task_obj,
            settings,
            out,
            overrides=_parse_pairs(override),
            device=device_option(device),
            force=force,
        )
    except (WorkbenchError, ValueError) as exc:
        raise fail(exc) from None
    final = {k: v for k, v in result.metrics.items() if k != "history"}
    console.print(f"wrote {out}: {json.dumps(final)}", soft_wrap=True)


@cli.command()
def convert(
    hf_dir: Annotated[
        str,
        typer.Argument(
            help="Hugging Face checkpoint directory, or a Hub model id (gpt2, "
            "EleutherAI/pythia-70m: fetched into the Hugging Face cache)."
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="New workbench checkpoint directory.")],
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch, tag or commit of a Hub model.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (in one step).")
    ] = False,
    allow_nonfinite: Annotated[
        bool, typer.Option("--allow-nonfinite", help="Convert NaN/inf weights (a broken model).")
    ] = False,
) -> None:
    """Convert a Hugging Face checkpoint (GPT-2, GPT-NeoX/Pythia, LLaMA/Mistral, BERT, ViT).

    OUT is written atomically (nothing on error); missing parent directories are created."""
    from workbench.convert import convert_dir
    from workbench.hub import hub_snapshot, is_hub_id

    try:
        source = Path(hf_dir)
        if not source.exists() and is_hub_id(hf_dir):
            source = hub_snapshot(hf_dir, revision)
        elif revision is not None:
            raise InputError(f"--revision pins a Hugging Face Hub model; {hf_dir} is a directory")
        convert_dir(source, out, force=force, allow_nonfinite=allow_nonfinite)
    except WorkbenchError as exc:
        raise fail(exc) from None
    console.print(f"wrote {out}", soft_wrap=True)


def device_option(name: str) -> str:
    """The device a `--device` value names, or `InputError` (see workbench.devices)."""
    from workbench.devices import resolve_device

    return resolve_device(name)


def threads_option(n: int) -> int:
    """Apply `--threads` (0: the default) before any work; returns the count used."""
    from workbench.devices import use_threads

    return use_threads(n)


def _parse_pairs(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _register_plugins() -> None:
    for entry in entry_points(group="workbench.commands"):
        entry.load()(cli)


def _guard_commands(app: typer.Typer) -> None:
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = _error_boundary(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _guard_commands(group.typer_instance)


_register_plugins()
_guard_commands(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
