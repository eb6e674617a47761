"""`workbench probe`, `workbench decompose`, `workbench invert` and `workbench neuron-path`,
registered through the `workbench.commands` entry point so that the core CLI never imports the
probes package. Each computes through the public functions the dashboard's probes page calls,
and `--html FILE` writes the page's figure (`workbench.html`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from workbench.cli_options import SEED_RANGE, ThreadsOption

if TYPE_CHECKING:
    from workbench.checkpoint import Checkpoint
    from workbench.tasks.base import Batch


def _task_batch(
    model: str, task: str | None, n_prompts: int, seed: int
) -> tuple[Checkpoint, Batch]:
    """The checkpoint, and `n_prompts` test sequences of its task (or of `task`)."""
    from probes.tasks import task_batch
    from workbench.api import open_checkpoint
    from workbench.errors import InputError

    ckpt = open_checkpoint(model)
    the_task = ckpt.task(task)
    if the_task is None:
        raise InputError(f"{model} was not trained on a built-in task: pass --task")
    return ckpt, task_batch(the_task, n_prompts, seed)


def _check_html(html: Path | None) -> None:
    """Refuse an --html path that cannot be written before the work, not after it."""
    from workbench.files import check_output_file

    if html is not None:
        check_output_file(html)


@contextmanager
def _bar(label: str, disable: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on the console, moved by the `on_progress(done, total)` it yields."""
    from rich.progress import Progress

    from workbench.cli import console

    with Progress(console=console, disable=disable) as bar:
        task_id = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task_id, completed=done, total=total)


ModelOption = Annotated[
    str, typer.Option(help="Built-in model, checkpoint directory or Hugging Face Hub id.")
]
TaskOption = Annotated[str | None, typer.Option(help="Built-in task; default: the model's own.")]
SiteOption = Annotated[str, typer.Option(help="resid_pre, resid_mid, resid_post, ...")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Write the dashboard's figure here (one HTML file).")
]


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
        html: HtmlOption = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """Linear probes per layer for the task's next-token targets, with a control task."""
        from rich.table import Table

        from probes.linear import task_probe
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            _check_html(html)
            ckpt, batch = _task_batch(model, task, n_prompts, seed)
            result = task_probe(ckpt.model, batch, site=site, kind=kind, seed=seed,
                                progress=not as_json)  # fmt: skip
            if html is not None:
                write_figure("probe", result, html)
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
        html: HtmlOption = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """Split hidden states into mean + position + context + residual, per layer."""
        from rich.table import Table

        from probes.decompose import decompose as run
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            _check_html(html)
            ckpt, batch = _task_batch(model, task, n_prompts, seed)
            result = run(ckpt.model, batch.tokens, site=site, progress=not as_json)
            if html is not None:
                write_figure("decompose", result, html)
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
        html: HtmlOption = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """Read the input tokens back from a layer's hidden states (SipIt), and test for
        collisions between the last-token states of many sequences."""
        from rich.table import Table

        from probes.invert import invert_prompts
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            _check_html(html)
            ckpt, batch = _task_batch(model, task, max(n_prompts, n_collision), seed)
            with _bar("inverting", disable=as_json) as on_progress:
                report = invert_prompts(
                    ckpt.model, list(batch.tokens[:n_prompts]), layer=layer, site=site,
                    tolerance=tolerance, certify=certify,
                    collision_prompts=batch.tokens[:n_collision] if n_collision else None,
                    name=ckpt.token_names(), on_progress=on_progress,
                )  # fmt: skip
            if html is not None:
                write_figure("invert", report, html)
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(report.to_json())
            return
        found, recovery, clash = report.inversions, report.recoveries, report.collisions
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
        html: HtmlOption = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """The most influential MLP neuron of each layer, found jointly (Wang et al. 2025),
        against the highest-activation, per-neuron and random paths."""
        from rich.table import Table

        from probes.neuron_path import compare_examples, task_examples
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            _check_html(html)
            ckpt, batch = _task_batch(model, task, n_prompts, seed)
            examples = task_examples(ckpt.model, batch)
            with _bar("tracing", disable=as_json) as on_progress:
                report = compare_examples(
                    ckpt.model, examples, steps=steps, n_random=n_random, seed=seed, site=site,
                    on_progress=on_progress,
                )  # fmt: skip
            if html is not None:
                write_figure("neuron-path", report, html)
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(report.to_json())
            return
        for i, r in enumerate(report.comparisons):
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
