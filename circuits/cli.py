"""`workbench patch`, registered through the `workbench.commands` entry point so that the core
CLI never imports the circuits package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from workbench.errors import InputError

UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_bytes(text: str) -> int:
    """'512MB', '1GiB' or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise InputError(f"cannot read memory budget {text!r}: write e.g. 512MB, 2GiB or 1000000")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def register(cli: typer.Typer) -> None:
    @cli.command()
    def patch(
        model: Annotated[str, typer.Option(help="Built-in model or checkpoint directory.")],
        site: Annotated[str, typer.Option(help="resid_pre, attn_out, mlp_out, z, q, k, v, ...")],
        task: Annotated[
            str | None, typer.Option(help="Built-in task; default: the model's own.")
        ] = None,
        positions: Annotated[str, typer.Option(help="each: one patch per position; all.")] = "each",
        heads: Annotated[str, typer.Option(help="each: one patch per head; all.")] = "each",
        ablation: Annotated[str, typer.Option(help="patch, zero, mean or resample.")] = "patch",
        metric: Annotated[str, typer.Option(help="logit_diff, prob, loss or kl.")] = "logit_diff",
        n_prompts: Annotated[int, typer.Option(help="Prompt pairs drawn from the task.")] = 16,
        seed: Annotated[int, typer.Option(help="Seed of the prompts and resampling.")] = 0,
        memory_budget: Annotated[str, typer.Option(help="Activation memory per chunk.")] = "1GiB",
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("-o", "--out", help="Write JSON here.")] = None,
    ) -> None:
        """Activation patching or ablation of one site over every layer, position and head."""
        from rich.table import Table

        from circuits.tasks import patch_task
        from workbench.api import open_checkpoint
        from workbench.cli import console, device_option, fail
        from workbench.errors import WorkbenchError
        from workbench.tasks import make_task

        try:
            for name, value in (("positions", positions), ("heads", heads)):
                if value not in ("each", "all"):
                    raise InputError(f"--{name} must be 'each' or 'all', got {value!r}")
            budget = parse_bytes(memory_budget)
            ckpt = open_checkpoint(model, device=device_option(device))
            spec = ckpt.meta.get("task")
            if task is None and spec is None:
                raise InputError(f"{model} was not trained on a built-in task: pass --task")
            the_task = make_task(task) if task else make_task(spec["name"], **spec["params"])
            result = patch_task(
                ckpt.model,
                the_task,
                site,
                positions=positions,
                heads=heads,
                ablation=ablation,
                metric=metric,
                n_prompts=n_prompts,
                seed=seed,
                memory_budget=budget,
            )
        except WorkbenchError as exc:
            raise fail(exc) from None
        if out is not None:
            out.write_text(result.to_json())
        if as_json:
            print(result.to_json())
            return
        rows = result.rows()
        columns = [k for k in rows[0] if k != result.metric] + [result.metric]
        title = (
            f"{result.ablation} {site}: {result.metric} (unpatched {result.target_baseline:.4g}"
            + (
                f", source {result.source_baseline:.4g})"
                if result.source_baseline is not None
                else ")"
            )
        )
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(
                *(f"{row[c]:.4g}" if c == result.metric else str(row[c]) for c in columns)
            )
        console.print(table)
