"""`workbench patch`, `workbench discover` and `workbench jobs`, registered through the
`workbench.commands` entry point so that the core CLI never imports the circuits package."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from workbench.cli_options import SEED_RANGE, DeviceOption, ThreadsOption
from workbench.errors import InputError, check_value
from workbench.files import check_output_file, write_output_file
from workbench.store import LEASE_SECONDS

if TYPE_CHECKING:
    from circuits.circuit import Circuit
    from circuits.jobs import Prepared, Settings
    from workbench.checkpoint import Checkpoint
    from workbench.store import JobStore

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
    budget = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    check_value(budget >= 1, "--memory-budget", text, "at least 1 byte, e.g. 512MB or 2GiB")
    return budget


def register(cli: typer.Typer) -> None:
    @cli.command()
    def patch(
        model: Annotated[
            str, typer.Option(help="Built-in model, checkpoint directory or Hugging Face Hub id.")
        ],
        site: Annotated[str, typer.Option(help="resid_pre, attn_out, mlp_out, z, q, k, v, ...")],
        task: Annotated[
            str | None, typer.Option(help="Built-in task; default: the model's own.")
        ] = None,
        positions: Annotated[str, typer.Option(help="each: one patch per position; all.")] = "each",
        heads: Annotated[str, typer.Option(help="each: one patch per head; all.")] = "each",
        ablation: Annotated[str, typer.Option(help="patch, zero, mean or resample.")] = "patch",
        metric: Annotated[str, typer.Option(help="logit_diff, prob, loss or kl.")] = "logit_diff",
        n_prompts: Annotated[
            int, typer.Option(help="Prompt pairs drawn from the task, >= 1.")
        ] = 16,
        seed: Annotated[int, typer.Option(help="Seed of the prompts and resampling.")] = 0,
        memory_budget: Annotated[str, typer.Option(help="Activation memory per chunk.")] = "1GiB",
        clean: Annotated[
            str | None, typer.Option(help="A typed clean prompt, instead of task pairs.")
        ] = None,
        corrupted: Annotated[
            str | None, typer.Option(help="The typed corrupted prompt (same length).")
        ] = None,
        answer: Annotated[
            str | None, typer.Option(help="Typed prompts: the answer token (default: clean top).")
        ] = None,
        wrong: Annotated[
            str | None,
            typer.Option(help="Typed prompts: the wrong token (default: corrupted top)."),
        ] = None,
        device: DeviceOption = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("-o", "--out", help="Write JSON here.")] = None,
        html: Annotated[
            Path | None, typer.Option("--html", help="Write the dashboard's heatmap here.")
        ] = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """Activation patching or ablation of one site over every layer, position and head,
        on prompt pairs of the model's task (or --task), or on a typed --clean and
        --corrupted prompt."""
        from rich.table import Table
        from rich.text import Text

        from circuits import tasks
        from circuits.ablation import Ablation
        from circuits.metrics import TaskMetric
        from workbench.api import open_checkpoint
        from workbench.cli import console, fail
        from workbench.devices import resolve_device, use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            for path in (out, html):
                if path is not None:
                    check_output_file(path)  # before the sweep, not after it
            for name, value in (("positions", positions), ("heads", heads)):
                if value not in ("each", "all"):
                    raise InputError(f"--{name} must be 'each' or 'all', got {value!r}")
            check_value(n_prompts >= 1, "--n-prompts", n_prompts, "at least 1")
            low, high = SEED_RANGE["min"], SEED_RANGE["max"]
            check_value(low <= seed <= high, "--seed", seed, f"an integer in [{low}, {high}]")
            kinds = {"ablation": Ablation.parse(ablation), "metric": TaskMetric.parse(metric)}
            typed = _typed_options(clean, corrupted, answer, wrong, task)
            budget = parse_bytes(memory_budget)
            ckpt = open_checkpoint(model, device=resolve_device(device))
            options = {"positions": positions, "heads": heads, "memory_budget": budget}
            if typed is not None:
                answer_id, wrong_id = (
                    _one_token(ckpt, text, what) if text else None
                    for text, what in ((typed.answer, "answer"), (typed.wrong, "wrong"))
                )
                setup = tasks.typed_setup(
                    ckpt.model,
                    _encode(ckpt, typed.clean, "clean"),
                    _encode(ckpt, typed.corrupted, "corrupted"),
                    answer=answer_id,
                    wrong=wrong_id,
                    **kinds,
                )
                result = tasks.sweep_site(ckpt.model, setup, site, **options)
            else:
                the_task = ckpt.task(task)
                if the_task is None:
                    raise InputError(
                        f"{model} was not trained on a built-in task: pass --task, or type "
                        "--clean and --corrupted prompts"
                    )
                result = tasks.patch_task(
                    ckpt.model,
                    the_task,
                    site,
                    **kinds,
                    n_prompts=n_prompts,
                    seed=seed,
                    **options,
                )
            if out is not None:
                write_output_file(out, result.to_json())
            if html is not None:
                write_figure("patch", result, html)
        except WorkbenchError as exc:
            raise fail(exc) from None
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
        table = Table(*columns, title=Text(title))  # the site is user text, not markup
        for row in rows:
            table.add_row(
                *(f"{row[c]:.4g}" if c == result.metric else str(row[c]) for c in columns)
            )
        console.print(table)


@dataclass(frozen=True)
class _Typed:
    """The typed prompts of `patch` and the answer tokens typed with them."""

    clean: str
    corrupted: str
    answer: str | None
    wrong: str | None


def _typed_options(
    clean: str | None,
    corrupted: str | None,
    answer: str | None,
    wrong: str | None,
    task: str | None,
) -> _Typed | None:
    """The typed prompts of `patch` (None: patch the task's pairs), checked for what goes
    with what."""
    if clean is None and corrupted is None:
        extra = [name for name, value in (("--answer", answer), ("--wrong", wrong)) if value]
        if extra:
            raise InputError(f"{' and '.join(extra)} go with typed --clean and --corrupted prompts")
        return None
    if clean is None or corrupted is None:
        raise InputError("type both --clean and --corrupted (prompts of the same length)")
    if task is not None:
        raise InputError("--task draws prompt pairs; typed --clean and --corrupted replace them")
    return _Typed(clean, corrupted, answer, wrong)


def _encode(ckpt: Checkpoint, text: str, what: str) -> list[int]:
    """Token ids of a typed prompt: words of the model's task vocabulary, text for its
    tokenizer, or token ids for a model with neither."""
    try:
        if ckpt.vocab is None and not ckpt.has_tokenizer:
            words = text.split()
            if not all(w.isascii() and w.isdigit() and len(w) <= 9 for w in words):
                raise InputError(
                    "this model has no vocabulary: type token ids, whole numbers separated by "
                    "spaces"
                )
            return [int(w) for w in words]
        return ckpt.encode(text)
    except InputError as exc:
        raise InputError(f"--{what}: {exc}") from None


def _one_token(ckpt: Checkpoint, text: str, what: str) -> int:
    """The id of one typed token (--answer, --wrong): a vocabulary word, a token of the
    tokenizer, or an id (`Checkpoint.token_id`)."""
    words = text.split()
    if len(words) != 1 and not ckpt.has_tokenizer:
        raise InputError(f"--{what} must be one token, got {len(words)}")
    found = ckpt.token_id(text.strip())
    if found is None:
        raise InputError(f"--{what}: {text[:40]!r} is not one token of this model")
    return found


DEFAULT_STORE = Path("runs") / "jobs.sqlite"
FIGURE = "circuit"  # the dashboard's circuit graph (workbench.figures entry point)
HTML_HELP = "Write the circuit graph (the dashboard's figure) to this HTML file."
LEASE_HELP = "Seconds a running job's lease lasts without a heartbeat (renewed every quarter)."


def register_discovery(cli: typer.Typer) -> None:
    jobs_cli = typer.Typer(help="Jobs in the job store: list, show, export.", no_args_is_help=True)

    @cli.command()
    def discover(
        model: Annotated[
            list[str] | None,
            typer.Option(
                help="Built-in model, checkpoint or compiled RASP dir, or a Hugging Face Hub "
                "id (repeat: sweep)."
            ),
        ] = None,
        method: Annotated[list[str] | None, typer.Option(help="acdc, eap or eap-ig.")] = None,
        task: Annotated[
            list[str] | None, typer.Option(help="Built-in task; default: the model's.")
        ] = None,
        threshold: Annotated[
            list[float] | None, typer.Option(help="ACDC threshold, or a score cut (>= 0).")
        ] = None,
        top_k: Annotated[list[int] | None, typer.Option(help="Keep the k best edges.")] = None,
        ablation: Annotated[str | None, typer.Option(help="patch, zero, mean or resample.")] = None,
        metric: Annotated[str, typer.Option(help="ACDC distance: kl or logit_diff.")] = "kl",
        n_prompts: Annotated[int, typer.Option(help="Prompts (per length for RASP), >= 1.")] = 16,
        seed: Annotated[int, typer.Option(help="Seed of the prompts.")] = 0,
        batch_size: Annotated[
            int | None,
            typer.Option(
                help="ACDC edges tried per pass at most (default: circuits.acdc.ACDC_BATCH)."
            ),
        ] = None,
        steps: Annotated[int, typer.Option(help="EAP-IG integration steps.")] = 5,
        ig_over: Annotated[str, typer.Option(help="EAP-IG over inputs or activations.")] = "inputs",
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
        resume: Annotated[str | None, typer.Option(help="Resume the job with this id.")] = None,
        steal: Annotated[
            bool, typer.Option(help="With --resume: take the job over from a live process.")
        ] = False,
        lease: Annotated[float, typer.Option(help=LEASE_HELP)] = LEASE_SECONDS,
        backend: Annotated[str, typer.Option(help="local, or ray for a sweep.")] = "local",
        address: Annotated[
            str | None, typer.Option(help="Ray cluster address; default: start a local one.")
        ] = None,
        device: DeviceOption = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the circuit as JSON.")] = False,
        html: Annotated[Path | None, typer.Option(help=HTML_HELP)] = None,
        threads: ThreadsOption = 0,
    ) -> None:
        """Discover circuits; progress and results stream into the job store. Repeated
        --model, --method, --task, --threshold and --top-k make a sweep over every
        combination (one job each), run here or on a Ray cluster (--backend ray)."""
        from circuits import jobs
        from workbench.cli import console, fail
        from workbench.devices import use_threads
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure

        try:
            use_threads(threads)
            given = {"--model": model, "--method": method, "--task": task}
            given |= {"--threshold": threshold, "--top-k": top_k, "--ablation": ablation}
            _check_job_options(resume, steal, lease, backend, address, given)
            if html is not None:
                check_output_file(html)  # before the job, not after it
            if resume is not None:
                started = _resume(store, resume, steal=steal, lease=lease, device=device)
            else:
                assert model is not None  # _check_job_options: --model without --resume
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
                    if html is not None:
                        raise InputError("--html draws one job's circuit: drop it for a sweep")
                    done = jobs.run_sweep(
                        str(store), plan, backend=backend, address=address, device=device,
                        lease=lease,
                    )  # fmt: skip
                    _print_sweep(done, as_json)
                    return
                started = _start(store, plan[0], lease=lease, device=device)
            job_id, circuit = _run(store, started)
            if html is not None:
                write_figure(FIGURE, circuit, html)
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
        """Every job: id, kind, method, status, progress, model. A job whose process died
        shows as interrupted: resume it with workbench discover --resume ID."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        from workbench.cli import console, fail
        from workbench.errors import WorkbenchError
        from workbench.store import JobStore

        try:
            listed = JobStore(store, readonly=True).list()
        except WorkbenchError as exc:
            raise fail(exc) from None
        if as_json:
            fields = ("id", "kind", "status", "done", "total", "settings", "created", "updated")
            fields += ("owner", "lease_until")
            print(json.dumps([{f: getattr(job, f) for f in fields} for job in listed]))
            return
        rows = []
        for job in listed:
            progress = f"{job.done}/{job.total}" if job.total else "-"
            method = str(job.settings.get("method", ""))
            rows.append((job.id, job.kind, method, job.status, progress))
        # ids are copied into --resume: no column but the model's may be cut or wrapped,
        # and the model's (user text, never read as markup) folds onto more lines
        columns = ("id", "kind", "method", "status", "progress", "model")
        table = Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False)  # no rules: more room
        for i, column in enumerate(table.columns[:-1]):
            column.no_wrap = True
            column.min_width = max((len(row[i]) for row in rows), default=len(columns[i]))
        table.columns[-1].overflow = "fold"
        for row, job in zip(rows, listed, strict=True):
            table.add_row(*map(Text, row), Text(str(job.settings.get("model"))))
        if any(job.status == "interrupted" for job in listed):
            table.caption = "interrupted: resume with workbench discover --resume ID"
        console.print(table)

    @jobs_cli.command("show")
    def show_job(
        job_id: Annotated[str, typer.Argument(help="The job's id.")],
        store: Annotated[Path, typer.Option(help="The job store (SQLite).")] = DEFAULT_STORE,
        html: Annotated[Path | None, typer.Option(help=HTML_HELP)] = None,
    ) -> None:
        """A job's settings, versions, progress, curves and result (JSON); --html FILE also
        writes a finished job's circuit graph."""
        from workbench.cli import fail
        from workbench.errors import WorkbenchError
        from workbench.html import write_figure
        from workbench.store import JobStore

        try:
            if html is not None:
                check_output_file(html)
            the_store = JobStore(store, readonly=True)
            job = the_store.get(job_id)
            curves = the_store.curves(job_id)
            if html is not None:
                from circuits.jobs import stored_circuit

                write_figure(FIGURE, stored_circuit(job), html)
        except WorkbenchError as exc:
            raise fail(exc) from None
        record = {**vars(job), "curves": curves}
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
            if out is not None:
                check_output_file(out)
            job = JobStore(store, readonly=True).get(job_id)
            if job.result is None:
                raise InputError(f"job {job_id} is {job.status}, not done: nothing to export yet")
            text = export_circuit(job.result, format)
            if out is not None:
                write_output_file(out, text)
        except WorkbenchError as exc:
            raise fail(exc) from None
        if out is None:
            print(text)

    cli.add_typer(jobs_cli, name="jobs")


def _check_job_options(
    resume: str | None,
    steal: bool,
    lease: float,
    backend: str,
    address: str | None,
    given: Mapping[str, object],
) -> None:
    """The options of `discover` that say how to run a job, not what it computes."""
    check_value(math.isfinite(lease) and lease >= 1, "--lease", lease, "a number of seconds >= 1")
    if address is not None and backend != "ray":
        raise InputError("--address is the Ray cluster of --backend ray: add that")
    if resume is None:
        if steal:
            raise InputError("--steal takes over a running job: use it with --resume ID")
        if not given["--model"]:
            raise InputError("pass --model (or --resume ID)")
        return
    extra = [name for name, value in given.items() if value]
    if extra:
        raise InputError(f"--resume runs the job with its own settings: drop {', '.join(extra)}")


@dataclass
class Started:
    """A job this process holds the lease of, ready to run."""

    store: JobStore
    job_id: str
    settings: Settings
    device: str
    prepared: Prepared


def _start(store: Path, settings: Settings, *, lease: float, device: str) -> Started:
    """A new job: the store path, the settings, the model, the task, the ablation and the
    device are all checked (the problem built) before the job's row is created."""
    from circuits import jobs
    from workbench.devices import resolve_device
    from workbench.store import JobStore, check_path

    check_path(store, must_exist=False)
    where = resolve_device(device)
    prepared = jobs.prepare(settings, where)
    the_store = JobStore(store, lease=lease)
    job_id = the_store.create(jobs.KIND, vars(settings), jobs.versions())
    return Started(the_store, job_id, settings, where, prepared)


def _resume(store: Path, job_id: str, *, steal: bool, lease: float, device: str) -> Started:
    """An existing job: refused while another process holds its lease (unless `steal`);
    its settings are checked and the problem built before the lease is taken."""
    from circuits import jobs
    from workbench.devices import resolve_device
    from workbench.store import JobStore

    the_store = JobStore(store, create=False, lease=lease)
    job = the_store.check_free(job_id, steal=steal)
    if job.kind != jobs.KIND:
        raise InputError(f"job {job_id} is a {job.kind} job, not a discovery: it cannot resume")
    settings = jobs.Settings.of(job)
    where = resolve_device(device)
    prepared = jobs.prepare(settings, where)
    the_store.acquire(job_id, steal=steal)
    return Started(the_store, job_id, settings, where, prepared)


def _run(store: Path, started: Started) -> tuple[str, Circuit]:
    """Run a started job with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    from circuits import jobs

    note = Console(stderr=True)
    method = started.settings.method
    note.print(
        f"job {started.job_id} ({method}) in {store}", markup=False, highlight=False, soft_wrap=True
    )
    with Progress(console=note, transient=True) as bar:
        task_id = bar.add_task(method, total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        circuit = jobs.run(
            started.store,
            started.job_id,
            started.settings,
            device=started.device,
            on_progress=on_progress,
            prepared=started.prepared,
        )
    return started.job_id, circuit


def _print_sweep(done: list[tuple[str, int]], as_json: bool) -> None:
    from workbench.cli import console

    rows = [{"job": i, "edges_kept": n} for i, n in done]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        console.print(f"job {row['job']}: {row['edges_kept']} edges kept")
