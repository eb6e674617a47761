"""`workbench patch`, `workbench discover` and `workbench jobs`, registered through the
`workbench.commands` entry point so that the core CLI never imports the circuits package."""

from __future__ import annotations

import json
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


DEFAULT_STORE = Path("runs") / "jobs.sqlite"


def register_discovery(cli: typer.Typer) -> None:
    jobs_cli = typer.Typer(help="Jobs in the job store: list, show, export.", no_args_is_help=True)

    @cli.command()
    def discover(
        model: Annotated[
            list[str] | None,
            typer.Option(help="Built-in model, checkpoint or compiled RASP dir (repeat: sweep)."),
        ] = None,
        method: Annotated[list[str] | None, typer.Option(help="acdc, eap or eap-ig.")] = None,
        task: Annotated[
            list[str] | None, typer.Option(help="Built-in task; default: the model's.")
        ] = None,
        threshold: Annotated[
            list[float] | None, typer.Option(help="ACDC threshold, or a score cut.")
        ] = None,
        top_k: Annotated[list[int] | None, typer.Option(help="Keep the k best edges.")] = None,
        ablation: Annotated[str | None, typer.Option(help="patch, zero, mean or resample.")] = None,
        metric: Annotated[str, typer.Option(help="ACDC distance: kl or logit_diff.")] = "kl",
        n_prompts: Annotated[int, typer.Option(help="Prompts (per length for RASP).")] = 16,
        seed: Annotated[int, typer.Option(help="Seed of the prompts.")] = 0,
        batch_size: Annotated[
            int | None,
            typer.Option(
                help="ACDC edges tried per pass at most (default: circuits.discovery.ACDC_BATCH)."
            ),
        ] = None,
        steps: Annotated[int, typer.Option(help="EAP-IG integration steps.")] = 5,
        ig_over: Annotated[str, typer.Option(help="EAP-IG over inputs or activations.")] = "inputs",
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
        resume: Annotated[str | None, typer.Option(help="Resume the job with this id.")] = None,
        backend: Annotated[str, typer.Option(help="local, or ray for a sweep.")] = "local",
        address: Annotated[
            str | None, typer.Option(help="Ray cluster address; default: start a local one.")
        ] = None,
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the circuit as JSON.")] = False,
    ) -> None:
        """Discover circuits; progress and results stream into the job store. Repeated
        --model, --method, --task, --threshold and --top-k make a sweep over every
        combination (one job each), run here or on a Ray cluster (--backend ray)."""
        from rich.console import Console
        from rich.progress import Progress

        from circuits import jobs
        from workbench.cli import console, device_option, fail
        from workbench.errors import WorkbenchError
        from workbench.store import JobStore

        note = Console(stderr=True)
        try:
            the_store = JobStore(store)
            if resume is not None:
                job = the_store.get(resume)
                plan, job_id = [jobs.Settings(**job.settings)], job.id
                if job.status == "done":
                    raise InputError(f"job {job_id} is already done: see workbench jobs show")
            else:
                if not model:
                    raise InputError("pass --model (or --resume ID)")
                plan = jobs.sweep(
                    model,
                    method or ["acdc"],
                    tasks=task,
                    thresholds=threshold,
                    top_ks=top_k,
                    ablation=ablation,
                    metric=metric,
                    n_prompts=n_prompts,
                    seed=seed,
                    steps=steps,
                    ig_over=ig_over,
                    **({} if batch_size is None else {"batch_size": batch_size}),
                )
                if len(plan) > 1 or backend != "local":
                    done = jobs.run_sweep(
                        str(store), plan, backend=backend, address=address,
                        device=device_option(device),
                    )  # fmt: skip
                    rows = [{"job": i, "edges_kept": n} for i, n in done]
                    if as_json:
                        print(json.dumps(rows))
                    else:
                        for row in rows:
                            console.print(f"job {row['job']}: {row['edges_kept']} edges kept")
                    return
                job_id = the_store.create(jobs.KIND, vars(plan[0]), jobs.versions())
            settings = plan[0]
            note.print(f"job {job_id} ({settings.method}) in {store}", highlight=False)
            with Progress(console=note, transient=True) as bar:
                task_id = bar.add_task(settings.method, total=None)

                def on_progress(done: int, total: int) -> None:
                    bar.update(task_id, completed=done, total=total)

                circuit = jobs.run(
                    the_store,
                    job_id,
                    settings,
                    device=device_option(device),
                    on_progress=on_progress,
                )
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            print(json.dumps({"job": job_id, **jobs._jsonable(circuit)}))
            return
        console.print(f"{len(circuit.edges)} of {len(circuit.scores)} edges kept; job {job_id}")

    @jobs_cli.command("list")
    def list_jobs(
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Every job: id, kind, method, status, progress, model."""
        from rich.table import Table

        from workbench.cli import console
        from workbench.store import JobStore

        listed = JobStore(store).list()
        if as_json:
            fields = ("id", "kind", "status", "done", "total", "settings", "created", "updated")
            print(json.dumps([{f: getattr(job, f) for f in fields} for job in listed]))
            return
        table = Table("id", "kind", "method", "status", "progress", "model")
        for job in listed:
            progress = f"{job.done}/{job.total}" if job.total else "-"
            method = str(job.settings.get("method", ""))
            table.add_row(
                job.id, job.kind, method, job.status, progress, str(job.settings.get("model"))
            )
        console.print(table)

    @jobs_cli.command("show")
    def show_job(
        job_id: Annotated[str, typer.Argument(help="The job's id.")],
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
    ) -> None:
        """A job's settings, versions, progress, curves and result (JSON)."""
        from workbench.cli import fail
        from workbench.errors import WorkbenchError
        from workbench.store import JobStore

        try:
            the_store = JobStore(store)
            job = the_store.get(job_id)
        except WorkbenchError as exc:
            raise fail(exc) from None
        record = {**vars(job), "curves": the_store.curves(job_id)}
        if job.result is not None:
            record["result"] = {k: v for k, v in job.result.items() if k != "scores"}
        print(json.dumps(record, indent=1))

    @jobs_cli.command("export")
    def export_job(
        job_id: Annotated[str, typer.Argument(help="The job's id.")],
        format: Annotated[str, typer.Option(help="json, dot or graphml.")] = "json",
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
        out: Annotated[Path | None, typer.Option("-o", "--out", help="Write here.")] = None,
    ) -> None:
        """A finished job's circuit as JSON, Graphviz dot or GraphML."""
        from circuits.export import export_circuit
        from workbench.cli import fail
        from workbench.errors import WorkbenchError
        from workbench.store import JobStore

        try:
            job = JobStore(store).get(job_id)
            if job.result is None:
                raise InputError(f"job {job_id} is {job.status}, not done: nothing to export yet")
            text = export_circuit(job.result, format)
        except WorkbenchError as exc:
            raise fail(exc) from None
        if out is not None:
            out.write_text(text)
        else:
            print(text)

    cli.add_typer(jobs_cli, name="jobs")
