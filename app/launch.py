"""Launching, cancelling and resuming discovery jobs from the circuits page: the page's form
checked as the server reads it (every value from the browser is checked here; the model is
looked up among the offered ones, and its worker is given the server's path for it), then a
worker process (`app.workers`) runs `workbench discover` with the CLI's options."""

from __future__ import annotations

import math
from typing import Any

from app.checks import choice, empty, number, whole
from app.context import AppContext
from app.jobs import find_job, offered_name, read_jobs
from circuits.ablation import Ablation
from circuits.acdc import ACDC_BATCH
from circuits.jobs import KIND, METHODS, Settings
from circuits.options import Distance, IgOver, Method
from workbench.cli_options import SEED_RANGE
from workbench.errors import InputError
from workbench.lease import describe
from workbench.tasks import TASKS

OWN_TASK = "the model's own"
DEFAULT_ABLATION = "default"
ABLATIONS = (DEFAULT_ABLATION, *(a.value for a in Ablation))
# caps on what one request may ask of the server (the CLI has none)
MAX_PROMPTS, MAX_STEPS, MAX_BATCH, MAX_TOP_K = 4096, 100, 256, 1_000_000
FORM = (
    "method", "threshold", "top_k", "ablation", "metric", "task", "n_prompts", "seed",
    "steps", "ig_over", "batch_size",
)  # fmt: skip
DEFAULTS: dict[str, Any] = {
    "method": "acdc", "threshold": 0.05, "top_k": None, "ablation": DEFAULT_ABLATION,
    "metric": "kl", "task": OWN_TASK, "n_prompts": 8, "seed": 0, "steps": 5,
    "ig_over": "inputs", "batch_size": ACDC_BATCH,
}  # fmt: skip


def settings_of(source: str, form: dict[str, object]) -> Settings:
    """The job's settings from the page's form; `source`: the offered model's server path."""
    given = {key: value for key, value in form.items() if not empty(value)}  # boxes filled in
    method = Method(choice(given.get("method"), METHODS, "method"))
    threshold = None
    if "threshold" in given:
        threshold = number(given["threshold"], 0, math.inf, "threshold")
    top_k = None
    if method != "acdc" and "top_k" in given:
        top_k = whole(given["top_k"], 1, MAX_TOP_K, "top-k")
    if method == "acdc" and threshold is None:
        raise InputError("acdc needs a threshold (the largest metric cost of removing an edge)")
    if method != "acdc" and top_k is None and threshold is None:
        raise InputError(f"{method} needs a top-k or a threshold to choose the circuit")
    if top_k is not None:
        threshold = None  # the CLI's rule: EAP takes the top-k when both are given
    ablation = choice(given.get("ablation"), ABLATIONS, "ablation")
    task = choice(given.get("task"), [OWN_TASK, *TASKS], "task")

    def count(key: str, low: int, high: int, what: str) -> int:
        return whole(given[key], low, high, what) if key in given else DEFAULTS[key]

    settings = Settings(
        source,
        method,
        None if task == OWN_TASK else task,
        threshold,
        top_k,
        None if ablation == DEFAULT_ABLATION else Ablation(ablation),
        Distance(choice(given.get("metric"), tuple(Distance), "metric")),
        count("n_prompts", 1, MAX_PROMPTS, "number of prompts"),
        count("seed", SEED_RANGE["min"], SEED_RANGE["max"], "seed"),
        count("batch_size", 1, MAX_BATCH, "batch size"),
        count("steps", 1, MAX_STEPS, "number of EAP-IG steps"),
        IgOver(choice(given.get("ig_over"), tuple(IgOver), "EAP-IG over setting")),
    )
    settings.check()
    return settings


def cli_args(settings: Settings) -> list[str]:
    """`workbench discover` options for these settings."""
    s = settings
    args = [f"--model={s.model}", f"--method={s.method}", f"--metric={s.metric}"]
    args += [f"--n-prompts={s.n_prompts}", f"--seed={s.seed}", f"--batch-size={s.batch_size}"]
    args += [f"--steps={s.steps}", f"--ig-over={s.ig_over}"]
    for option, value in (("task", s.task), ("ablation", s.ablation)):
        if value is not None:
            args.append(f"--{option}={value}")
    if s.threshold is not None:
        args.append(f"--threshold={s.threshold!r}")
    if s.top_k is not None:
        args.append(f"--top-k={s.top_k}")
    return args


def launch(context: AppContext, model: object, form: dict[str, object]) -> str:
    """Start a discovery job on the offered model `model` in a worker; the worker's key."""
    offered = context.registry.get(model)  # a name the server offers, never a path
    settings = settings_of(offered.source, form)
    label = f"{settings.method} on {offered.name}"
    worker = context.workers.launch(cli_args(settings), label)
    return worker.key


def cancel(context: AppContext, job_id: object) -> str:
    """Ctrl-C the worker that runs the job (one this server started)."""
    job = find_job(read_jobs(context.store), job_id)
    worker = context.workers.of_job(job.id)
    if worker is not None and worker.alive:
        context.workers.cancel(worker)
        return f"job {job.id}: cancelling; it stops after its current step (resume continues)"
    if job.status == "running" and not context.workers.owned_by_dead_worker(job):
        raise InputError(
            f"job {job.id} runs in {describe(job.owner)}, which this dashboard did not start: "
            "stop it there (Ctrl-C)"
        )
    raise InputError(f"job {job.id} is not running here: there is nothing to cancel")


def resume(context: AppContext, job_id: object) -> str:
    """Resume an interrupted, failed or queued job in a worker (`--resume ID`)."""
    jobs = read_jobs(context.store)
    job = find_job(jobs, job_id)
    if job.kind != KIND:
        raise InputError(f"job {job.id} is a {job.kind} job, not a discovery: it cannot resume")
    if job.status == "done":
        raise InputError(f"job {job.id} is already done")
    name = offered_name(context.registry, job.settings.get("model"))
    if name is None:
        raise InputError(
            f"job {job.id}'s model is not offered by this server: resume it with "
            f"workbench discover --resume {job.id}"
        )
    steal = False
    if job.status == "running":
        worker = context.workers.of_job(job.id)
        if worker is not None and worker.alive and worker.cancelled is not None:
            raise InputError(
                f"job {job.id} is stopping: resume it once the list shows it interrupted"
            )
        if worker is not None and worker.alive:
            raise InputError(f"job {job.id} is already running from this dashboard")
        if not context.workers.owned_by_dead_worker(job):
            raise InputError(
                f"job {job.id} runs in {describe(job.owner)}: it resumes only once that "
                "process stops"
            )
        steal = True  # its owner was our worker, and it has ended: its lease is stale
    args = [f"--resume={job.id}", *(["--steal"] if steal else [])]
    worker = context.workers.launch(args, f"resume {job.id}", resume=job.id)
    return worker.key
