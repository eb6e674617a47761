"""The job store as the circuits page reads it: every job as a row of the page's table (with
the jobs this server's workers are starting), a job's circuit (its result, or the scores a
running job has saved so far), its faithfulness curve and, for a compiled RASP program, its
ROC against the ground truth. Read-only: the page never writes to the store (the workers
do) and never creates it.

A job names its model as `workbench discover` was given it (a built-in name, or a path on
the server); the page shows it by the name this server offers it under, or else by its last
path part alone, and runs nothing of a model the server does not offer."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from dash import html

from app.models import ModelRegistry
from circuits.circuit import Circuit
from circuits.evaluation import ROC, Faithfulness, roc
from circuits.graph import build_graph
from circuits.jobs import stored_circuit
from workbench.api import list_builtin_models
from workbench.checkpoint import read_meta
from workbench.errors import InputError, WorkbenchError
from workbench.store import Job, JobStore

if TYPE_CHECKING:
    from app.context import AppContext

MAX_ROWS = 200  # the newest jobs shown
COLUMNS = ("id", "model", "method", "status", "progress", "threshold", "edges kept")
COLUMNS += ("started", "duration")


def read_jobs(store: Path) -> list[Job]:
    """Every job, oldest first, without its results' edge scores (`job_circuit` reads them);
    none while no job has made the store (or a worker is making it: still empty)."""
    if not store.exists() or store.stat().st_size == 0:
        return []
    return _reading(store, lambda s: s.list(scores=False))


def _reading(store: Path, read):
    """`read(the store)`, whose errors name no server path."""
    try:
        return read(JobStore(store, readonly=True))
    except WorkbenchError as error:  # its message names the store's path
        raise InputError(
            "the job store cannot be read: " + str(error).replace(str(store), "the job store")
        ) from None


def find_job(jobs: list[Job], job_id: object) -> Job:
    """The job `job_id` names (a value from the browser) among the store's."""
    for job in jobs:
        if isinstance(job_id, str) and job.id == job_id:
            return job
    if job_id is None or job_id == "":
        raise InputError("no job is chosen: choose one in the list of jobs")
    raise InputError(f"no job {repr(job_id)[:60]} in this server's job store; choose one listed")


@lru_cache(maxsize=1)
def _builtins() -> tuple[str, ...]:
    return tuple(list_builtin_models())


@lru_cache(maxsize=4096)
def _real(path: str) -> str:
    return os.path.realpath(path)


def offered_name(registry: ModelRegistry, model: object) -> str | None:
    """The name this server offers the job's model under, or None."""
    if not isinstance(model, str):
        return None
    here = _real(model)
    for name in registry.names:
        if _real(registry.get(name).source) == here:
            return name
    if model in registry.names and model in _builtins():
        return model
    return None


def model_label(registry: ModelRegistry, model: object) -> str:
    name = offered_name(registry, model)
    if name is not None:
        return name
    return f"{Path(str(model)).name} (not offered here)"


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    method: str
    status: str
    done: int
    total: int
    threshold: str
    edges: str
    start: str
    duration: str


def job_row(job: Job, model: str, now: float, note: str = "") -> Row:
    settings = job.settings
    if settings.get("top_k") is not None:
        cut = f"top {settings['top_k']}"
    elif settings.get("threshold") is not None:
        cut = f"{settings['threshold']:g}"
    else:
        cut = "-"
    edges = "-"
    if job.result is not None:
        edges = f"{len(job.result.get('edges', []))} of {job.total}"
    end = now if job.status == "running" else job.updated
    return Row(
        job.id,
        model,
        str(settings.get("method", job.kind)),
        job.status + (f" ({note})" if note else ""),
        job.done,
        job.total,
        cut,
        edges,
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created)),
        duration(end - job.created),
    )


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def job_curves(store: Path, job_id: str) -> dict[str, list[tuple[float, float]]]:
    return _reading(store, lambda s: s.curves(job_id))


def job_circuit(store: Path, job: Job) -> Circuit | None:
    """A finished job's circuit; for an unfinished one, the scores saved so far (its edges:
    none yet, the page draws the edges scoring above the job's threshold), or None."""
    if job.result is not None:
        return stored_circuit(_reading(store, lambda s: s.get(job.id)))  # with its scores
    scores = _reading(store, lambda s: s.scores(job.id))
    if not scores:
        return None
    return Circuit(str(job.settings.get("method")), (), scores, "", dict(job.settings))


def circuit_threshold(job: Job, circuit: Circuit) -> float | None:
    """The score cut that gives the job's circuit: its threshold, or for a top-k job the
    k-th best score."""
    if job.settings.get("top_k") is not None:
        kept = [circuit.scores[e] for e in circuit.edges if e in circuit.scores]
        return min(kept) if kept else None
    threshold = job.settings.get("threshold")
    return float(threshold) if threshold is not None else None


def stored_faithfulness(points: list[tuple[float, float]]) -> Faithfulness | None:
    """The faithfulness curve a finished job stored ((edges kept, metric) per point, from no
    edge kept to every edge kept), with the fraction of the metric recovered."""
    if len(points) < 2:
        return None
    points = sorted(points)
    ablated, full = points[0][1], points[-1][1]
    span = full - ablated
    recovered = tuple((y - ablated) / span if span else float("nan") for _, y in points)
    kept = tuple(int(x) for x, _ in points)
    return Faithfulness(kept, tuple(y for _, y in points), full, ablated, recovered)


def job_roc(registry: ModelRegistry, job: Job, circuit: Circuit) -> ROC | None:
    """The ROC of a finished job's scores against its compiled RASP model's ground truth;
    None when the model is not a compiled program (or not offered here)."""
    name = offered_name(registry, job.settings.get("model"))
    if name is None or job.result is None:
        return None
    try:
        meta = read_meta(registry.get(name).source)
    except WorkbenchError:
        return None  # a Hugging Face directory, or a broken checkpoint: no ground truth
    if meta.get("task") != "rasp":
        return None
    truth = meta["rasp"]["ground_truth"]["edges"]
    return roc(circuit, truth, build_graph(meta["config"]))


# ----- the table on the page ------------------------------------------------------------------


def table_rows(context: AppContext) -> tuple[list[Row], list[str]]:
    """The store's jobs, newest first, with the jobs this server's workers are starting, and
    a message per launch that failed before its job existed."""
    jobs = read_jobs(context.store)
    workers = context.workers
    workers.match(jobs)
    now = time.time()
    rows, notes = [], []
    for worker in workers.workers():
        if worker.job is None and worker.alive:
            starting = Row("(starting)", worker.label, "", "starting", 0, 0, "", "", "", "")
            rows.append(starting)
        elif worker.job is None and worker.error and now - worker.started < 600:
            notes.append(f"{worker.label} failed before it started: {worker.error}")
    for job in reversed(jobs[-MAX_ROWS:]):
        worker = workers.of_job(job.id)
        note = ""
        if worker is not None and worker.cancelled is not None and job.status != "done":
            note = "cancelled here"
        elif job.status == "running" and workers.owned_by_dead_worker(job):
            note = "its worker ended"
        rows.append(
            job_row(job, model_label(context.registry, job.settings.get("model")), now, note)
        )
    return rows, notes


def table(rows: list[Row]) -> html.Table:
    def cell(row: Row, column: str):
        if column == "progress":
            if not row.total:
                return "-"
            return [
                html.Progress(value=str(row.done), max=str(row.total)),
                f" {row.done}/{row.total}",
            ]
        key = {"edges kept": "edges", "started": "start"}.get(column, column)
        return getattr(row, key)

    header = html.Tr(
        [html.Th(c, style={"textAlign": "left", "paddingRight": "12px"}) for c in COLUMNS]
    )
    body = [
        html.Tr([html.Td(cell(row, c), style={"paddingRight": "12px"}) for c in COLUMNS])
        for row in rows
    ]
    if not rows:
        body = [html.Tr(html.Td("no jobs yet: launch one above", colSpan=len(COLUMNS)))]
    return html.Table([html.Thead(header), html.Tbody(body)], style={"fontSize": "small"})
