"""`workbench probe` and `workbench decompose`, registered through the `workbench.commands` entry point so that the core
CLI never imports the probes package."""

from __future__ import annotations

from typing import Annotated

import typer


def _task_batch(model: str, task: str | None, n_prompts: int, seed: int):
    """The model, and `n_prompts` test sequences of its task (or of `task`)."""
    import torch

    from workbench.api import open_checkpoint
    from workbench.errors import InputError
    from workbench.tasks import make_task

    ckpt = open_checkpoint(model)
    spec = ckpt.meta.get("task")
    if task is None and not isinstance(spec, dict):
        raise InputError(f"{model} was not trained on a built-in task: pass --task")
    the_task = make_task(task) if task else make_task(spec["name"], **spec["params"])
    return ckpt.model, the_task.sample(n_prompts, torch.Generator().manual_seed(seed), "test")


def register(cli: typer.Typer) -> None:
    @cli.command()
    def probe(
        model: Annotated[str, typer.Option(help="Built-in model or checkpoint directory.")],
        site: Annotated[str, typer.Option(help="resid_pre, resid_mid, resid_post, ...")] = (
            "resid_post"
        ),
        task: Annotated[
            str | None, typer.Option(help="Built-in task; default: the model's own.")
        ] = None,
        kind: Annotated[str, typer.Option(help="logistic or ridge.")] = "logistic",
        n_prompts: Annotated[int, typer.Option(help="Sequences drawn from the task.")] = 64,
        seed: Annotated[int, typer.Option(help="Seed of the sequences and the split.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Linear probes per layer for the task's next-token targets, with a control task."""
        from rich.table import Table

        from probes.linear import linear_probe
        from workbench.cli import console, fail
        from workbench.errors import WorkbenchError
        from workbench.tasks.base import IGNORE

        try:
            the_model, batch = _task_batch(model, task, n_prompts, seed)
            result = linear_probe(
                the_model, batch.tokens, batch.targets, site=site, kind=kind, ignore=IGNORE,
                seed=seed,
            )  # fmt: skip
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(result.to_json())
            return
        table = Table("layer", "train", "test", "control", "selectivity", title=f"{kind} {site}")
        for i, layer in enumerate(result.layers):
            row = (result.train[i], result.test[i], result.control[i], result.selectivity[i])
            table.add_row(str(layer), *(f"{v:.3f}" for v in row))
        console.print(table)

    @cli.command()
    def decompose(
        model: Annotated[str, typer.Option(help="Built-in model or checkpoint directory.")],
        site: Annotated[str, typer.Option(help="resid_pre, resid_mid, resid_post, ...")] = (
            "resid_post"
        ),
        task: Annotated[
            str | None, typer.Option(help="Built-in task; default: the model's own.")
        ] = None,
        n_prompts: Annotated[int, typer.Option(help="Contexts drawn from the task.")] = 256,
        seed: Annotated[int, typer.Option(help="Seed of the contexts.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Split hidden states into mean + position + context + residual, per layer."""
        from rich.table import Table

        from probes.decompose import decompose as run
        from workbench.cli import console, fail
        from workbench.errors import WorkbenchError

        try:
            the_model, batch = _task_batch(model, task, n_prompts, seed)
            result = run(the_model, batch.tokens, site=site)
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(result.to_json())
            return
        table = Table("layer", "position", "context", "residual", "pos rank", "max cos")
        for g in result.layers:
            shares = (g.share["position"], g.share["context"], g.share["residual"])
            table.add_row(
                str(g.layer), *(f"{v:.3f}" for v in shares), str(g.pos_rank),
                f"{max(g.cosines, default=0.0):.3f}",
            )  # fmt: skip
        console.print(table)
