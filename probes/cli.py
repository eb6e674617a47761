"""`workbench probe`, `workbench decompose` and `workbench invert`, registered through the `workbench.commands` entry point so that the core
CLI never imports the probes package."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli_options import SEED_RANGE, ThreadsOption


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


ModelOption = Annotated[str, typer.Option(help="Built-in model or checkpoint directory.")]
TaskOption = Annotated[str | None, typer.Option(help="Built-in task; default: the model's own.")]
SiteOption = Annotated[str, typer.Option(help="resid_pre, resid_mid, resid_post, ...")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(cli: typer.Typer) -> None:
    @cli.command()
    def probe(
        model: ModelOption,
        site: SiteOption = "resid_post",
        task: TaskOption = None,
        kind: Annotated[str, typer.Option(help="logistic or ridge.")] = "logistic",
        n_prompts: Annotated[int, typer.Option(min=2, help="Sequences drawn from the task.")] = 64,
        seed: Annotated[
            int, typer.Option(**SEED_RANGE, help="Seed of the sequences and the split.")
        ] = 0,
        as_json: JsonOption = False,
        threads: ThreadsOption = 0,
    ) -> None:
        """Linear probes per layer for the task's next-token targets, with a control task."""
        from rich.table import Table

        from probes.linear import linear_probe
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.tasks.base import IGNORE

        try:
            use_threads(threads)
            the_model, batch = _task_batch(model, task, n_prompts, seed)
            result = linear_probe(
                the_model, batch.tokens, batch.targets, site=site, kind=kind, ignore=IGNORE,
                seed=seed, progress=not as_json,
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
        model: ModelOption,
        site: SiteOption = "resid_post",
        task: TaskOption = None,
        n_prompts: Annotated[int, typer.Option(min=2, help="Contexts drawn from the task.")] = 256,
        seed: Annotated[int, typer.Option(**SEED_RANGE, help="Seed of the contexts.")] = 0,
        as_json: JsonOption = False,
        threads: ThreadsOption = 0,
    ) -> None:
        """Split hidden states into mean + position + context + residual, per layer."""
        from rich.table import Table

        from probes.decompose import decompose as run
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError

        try:
            use_threads(threads)
            the_model, batch = _task_batch(model, task, n_prompts, seed)
            result = run(the_model, batch.tokens, site=site, progress=not as_json)
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

    @cli.command()
    def invert(
        model: ModelOption,
        layer: Annotated[int, typer.Option(help="The layer whose hidden states are inverted.")],
        site: Annotated[str, typer.Option(help="resid_pre, resid_mid or resid_post.")] = (
            "resid_post"
        ),
        task: TaskOption = None,
        n_prompts: Annotated[int, typer.Option(min=1, help="Test sequences to invert.")] = 4,
        n_collision: Annotated[
            int, typer.Option(min=0, help="Sequences for the collision test (0: skip it).")
        ] = 256,
        tolerance: Annotated[float, typer.Option(help="Accept within this L2 distance.")] = 1e-3,
        certify: Annotated[
            bool, typer.Option(help="Verify every token: report ambiguity and margins.")
        ] = False,
        seed: Annotated[int, typer.Option(**SEED_RANGE, help="Seed of the sequences.")] = 0,
        as_json: JsonOption = False,
        threads: ThreadsOption = 0,
    ) -> None:
        """Read the input tokens back from a layer's hidden states (SipIt), and test for
        collisions between the last-token states of many sequences."""
        import json

        from rich.progress import track
        from rich.table import Table

        from probes.invert import collisions, hidden_states
        from probes.invert import invert as run
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError

        try:
            use_threads(threads)
            the_model, batch = _task_batch(model, task, max(n_prompts, n_collision), seed)
            prompts = batch.tokens[:n_prompts]
            found = []
            for tokens in track(prompts, "inverting", console=console, disable=as_json):
                states = hidden_states(the_model, tokens, layer, site)
                found.append(
                    run(the_model, states, layer=layer, site=site, tolerance=tolerance,
                        certify=certify)
                )  # fmt: skip
            clash = None
            if n_collision:
                clash = collisions(the_model, batch.tokens[:n_collision], site=site)
        except WorkbenchError as exc:
            raise fail(exc) from None
        recovery = [f.recovery(t) for f, t in zip(found, prompts, strict=True)]
        if as_json:
            report = {
                "recovery": sum(recovery) / len(recovery),
                "inversions": [json.loads(f.to_json()) for f in found],
                "collisions": None if clash is None else json.loads(clash.to_json()),
            }
            print(json.dumps(report))
            return
        table = Table("prompt", "exact", "verified/token", "calls/token", "ms/token", "status",
                      title=f"SipIt, {site} of layer {layer}")  # fmt: skip
        for i, (f, rate) in enumerate(zip(found, recovery, strict=True)):
            n = len(f.tokens)
            table.add_row(
                str(i), f"{rate:.3f}", f"{f.verified_per_token():.1f}", f"{sum(f.calls) / n:.2f}",
                f"{1000 * f.seconds / n:.1f}", ", ".join(sorted(set(f.status))),
            )  # fmt: skip
        console.print(table)
        if clash is not None:
            table = Table("layer", "min distance", f"pairs < {clash.threshold:g}",
                          title=f"collisions over {clash.n_pairs} pairs")  # fmt: skip
            for row in zip(clash.layers, clash.min_distance, clash.below, strict=True):
                table.add_row(str(row[0]), f"{row[1]:.3g}", str(row[2]))
            console.print(table)

    @cli.command("neuron-path")
    def neuron_path(
        model: ModelOption,
        task: TaskOption = None,
        site: Annotated[str, typer.Option(help="Neurons: mlp_post or mlp_pre.")] = "mlp_post",
        n_prompts: Annotated[int, typer.Option(min=1, help="Test examples, one path each.")] = 2,
        steps: Annotated[int, typer.Option(min=1, help="Integrated-gradient steps (m).")] = 20,
        n_random: Annotated[
            int, typer.Option(min=0, help="Random paths to compare with (0: none).")
        ] = 10,
        seed: Annotated[
            int, typer.Option(**SEED_RANGE, help="Seed of the examples and random paths.")
        ] = 0,
        as_json: JsonOption = False,
        threads: ThreadsOption = 0,
    ) -> None:
        """The most influential MLP neuron of each layer, found jointly (Wang et al. 2025),
        against the highest-activation, per-neuron and random paths."""
        import json

        from rich.progress import track
        from rich.table import Table

        from probes.neuron_path import compare_paths, task_examples
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError

        try:
            use_threads(threads)
            the_model, batch = _task_batch(model, task, n_prompts, seed)
            examples = task_examples(the_model, batch)
            results = [
                compare_paths(the_model, inputs, target, steps=steps, n_random=n_random,
                              seed=seed, position=position, site=site)
                for inputs, target, position in track(
                    examples, "tracing", console=console, disable=as_json
                )
            ]  # fmt: skip
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(json.dumps([json.loads(r.to_json()) for r in results]))
            return
        for i, r in enumerate(results):
            table = Table("path", "neurons (layer 0..)", "joint influence", "drop when suppressed",
                          title=f"example {i}: target {r.target}, p = {r.output:.4f}")  # fmt: skip
            for path, influence, drop in zip(r.paths, r.influence, r.drop, strict=True):
                units = " ".join(map(str, path.neurons))
                table.add_row(path.method, units, f"{influence:.4g}", f"{drop:.4g}")
            if n := len(r.random_drop):
                table.add_row(
                    f"random (mean of {n})", "", f"{sum(r.random_influence) / n:.4g}",
                    f"{sum(r.random_drop) / n:.4g}",
                )  # fmt: skip
            console.print(table)
