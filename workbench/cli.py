"""The `workbench` command line. Thin: each command calls the same public functions as notebooks.

Heavy imports (torch, TransformerLens, Dash) happen inside the commands that need them.
Packages above the core (the dashboard, later circuits and RASP) add their own commands through
the `workbench.commands` entry-point group, so the core never imports them.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workbench.errors import WorkbenchError

cli = typer.Typer(
    help="Mechanistic-interpretability workbench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(exc: Exception) -> typer.Exit:
    """Print `exc` as a one-line error and exit with status 2 (bad input). The message is
    text, not Rich markup: `[b]` and `:x:` in it print as they are."""
    Console(stderr=True).print(
        f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True, emoji=False
    )
    return typer.Exit(code=2)


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
) -> None:
    """List a preset's hook points and their dimensions, from its config alone."""
    from workbench.presets import get_preset
    from workbench.schema import hook_schema

    try:
        specs = hook_schema(get_preset(preset).config)
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
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of init and data.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Batch size; 0 = full batch.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    schedule: Annotated[str, typer.Option(help="constant or cosine (to 10% of lr).")] = "constant",
    checkpoint_every: Annotated[int, typer.Option(help="Steps between resume points.")] = 500,
    task_param: Annotated[
        list[str], typer.Option("--task-param", help="KEY=VALUE, repeatable.")
    ] = [],  # noqa: B006
    override: Annotated[list[str], typer.Option("--set", help="Config override KEY=VALUE.")] = [],  # noqa: B006
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Train a preset on a task; resumes an interrupted run in the same directory."""
    from workbench.tasks import make_task
    from workbench.training import TrainSettings
    from workbench.training import train as run_training

    try:
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
        )
    except (WorkbenchError, ValueError) as exc:
        raise fail(exc) from None
    final = {k: v for k, v in result.metrics.items() if k != "history"}
    console.print(f"wrote {out}: {json.dumps(final)}")


@cli.command()
def convert(
    hf_dir: Annotated[Path, typer.Argument(help="Hugging Face checkpoint directory.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="New workbench checkpoint directory.")],
) -> None:
    """Convert a Hugging Face checkpoint (GPT-2, GPT-NeoX/Pythia, LLaMA/Mistral, BERT, ViT)."""
    from workbench.convert import convert_dir

    try:
        convert_dir(hf_dir, out)
    except WorkbenchError as exc:
        raise fail(exc) from None
    console.print(f"wrote {out}")


def device_option(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


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


_register_plugins()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
