"""Discovery jobs started from the dashboard, each in a worker process of its own that runs
`workbench discover` (the CLI's own code path) against the server's job store; the pages only
read the store. A request thread starts a worker and returns at once.

Cancelling sends the worker SIGINT, the CLI's Ctrl-C: the job stops its heartbeat, ends its
lease and shows as `interrupted`, resumable at once with `--resume ID`. Every write to the
store is one transaction, so a worker stopped at any moment (even killed, if it does not
stop within `KILL_AFTER` seconds) leaves it consistent.

`python -m app.workers ARGS` is the worker: the CLI with Ctrl-C and SIGTERM both raising
KeyboardInterrupt (a process started in the background may inherit SIGINT ignored)."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import InputError

if TYPE_CHECKING:
    from workbench.store import Job

MAX_WORKERS = 4  # live workers per server: each loads a model and computes
KILL_AFTER = 30.0  # seconds a cancelled worker has to stop before it is killed
ROOT = Path(__file__).resolve().parents[1]  # the packages the server runs, for its workers


@dataclass
class Worker:
    """One worker process: what it runs, and what became of it."""

    key: str  # this server's name for it, before its job has an id
    label: str  # e.g. "eap on induction-2l", or "resume <id>"
    process: subprocess.Popen
    log: Path  # its stderr
    started: float
    resume: str | None = None  # the job it resumes
    job: str | None = None  # its job's id, once the store shows it
    cancelled: float | None = None
    returncode: int | None = None
    error: str | None = None  # the CLI's error line, when it failed
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class Workers:
    """The worker processes one dashboard server started, and their jobs."""

    def __init__(
        self, store: Path, *, limit: int = MAX_WORKERS, redact: dict[str, str] | None = None
    ) -> None:
        """`redact`: server paths (model sources) and the names that replace them in the
        messages the page shows."""
        self.store, self.limit = store, limit
        self.redact = {str(store): "the job store", **(redact or {})}
        self._workers: dict[str, Worker] = {}
        self._lock = threading.Lock()
        self._logs: Path | None = None  # made by the first launch
        _LIVE.add(self)

    def launch(self, args: list[str], label: str, *, resume: str | None = None) -> Worker:
        """Start `workbench discover ARGS --store STORE` in a new process; refused while
        `limit` workers are alive, or while one of them runs the job `resume` names (and
        was not cancelled: the caller checks that the store shows it let the job go)."""
        with self._lock:
            alive = [w for w in self._workers.values() if w.alive]
            if len(alive) >= self.limit:
                raise InputError(
                    f"{len(alive)} jobs are running from this dashboard (at most {self.limit}): "
                    "wait for one to finish, or cancel one"
                )
            running = [w for w in alive if w.cancelled is None]  # a cancelled one has let go
            if resume is not None and any(resume in (w.job, w.resume) for w in running):
                raise InputError(f"job {resume} is already running from this dashboard")
            if self._logs is None:
                self._logs = Path(tempfile.mkdtemp(prefix="workbench-workers-"))
            key = secrets.token_hex(4)
            log = self._logs / f"{key}.log"
            command = [sys.executable, "-m", "app.workers", "discover", *args]
            command += ["--store", str(self.store)]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(_paths())}
            with log.open("wb") as err:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=env,
                )
            worker = Worker(key, label, process, log, time.time(), resume=resume, job=resume)
            self._workers[key] = worker
        threading.Thread(target=self._reap, args=(worker,), daemon=True).start()
        return worker

    def _reap(self, worker: Worker) -> None:
        """Wait for the worker to end (no zombie stays) and keep its error line."""
        code = worker.process.wait()
        if code != 0 and worker.cancelled is None:
            worker.error = self._error_line(worker.log, code)
        worker.returncode = code
        worker._done.set()

    def _error_line(self, log: Path, code: int) -> str:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        errors = [
            line.removeprefix("error:").strip() for line in lines if line.startswith("error:")
        ]
        message = errors[-1] if errors else f"the worker ended with status {code}"
        for path, name in sorted(self.redact.items(), key=lambda kv: -len(kv[0])):
            message = message.replace(path, name)
        return message[:500]

    def match(self, jobs: list[Job]) -> None:
        """Give each worker its job: the one whose lease this worker's process took."""
        host = socket.gethostname()
        with self._lock:
            waiting = {w.process.pid: w for w in self._workers.values() if w.job is None}
        for job in jobs:
            if waiting and job.owner:
                owner_host, pid, _ = job.owner.rsplit("/", 2)
                if owner_host == host and (worker := waiting.get(int(pid))) is not None:
                    worker.job = job.id
                    waiting.pop(int(pid))

    def workers(self) -> list[Worker]:
        with self._lock:
            return list(self._workers.values())

    def of_job(self, job_id: str) -> Worker | None:
        """The latest worker that ran (or runs) `job_id`."""
        found = [w for w in self.workers() if w.job == job_id]
        return max(found, key=lambda w: w.started) if found else None

    def owned_by_dead_worker(self, job: Job) -> bool:
        """Whether the job's lease is held by a worker of ours that has ended (its lease
        outlives it until it expires; taking the job over is then safe)."""
        if not job.owner:
            return False
        host, pid, _ = job.owner.rsplit("/", 2)
        return host == socket.gethostname() and any(
            w.process.pid == int(pid) and not w.alive for w in self.workers()
        )

    def cancel(self, worker: Worker) -> None:
        """Ctrl-C the worker; kill it if it has not stopped `KILL_AFTER` seconds later."""
        if not worker.alive:
            return
        worker.cancelled = time.time()
        _signal(worker, signal.SIGINT)
        threading.Thread(target=self._kill_late, args=(worker,), daemon=True).start()

    def _kill_late(self, worker: Worker) -> None:
        if not worker.wait(KILL_AFTER):
            _signal(worker, signal.SIGKILL)

    def close(self, wait: float = 10.0) -> None:
        """Cancel every live worker (its job becomes resumable) and wait for them to end."""
        for worker in self.workers():
            self.cancel(worker)
        deadline = time.time() + wait
        for worker in self.workers():
            worker.wait(max(0.0, deadline - time.time()))
        if self._logs is not None:
            shutil.rmtree(self._logs, ignore_errors=True)


def _signal(worker: Worker, sig: int) -> None:
    if worker.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(sig)


def _paths() -> list[str]:
    """The worker imports the packages this server runs (a checkout, or the installed ones)."""
    return [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]


_LIVE: weakref.WeakSet[Workers] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # a server that stops leaves its jobs resumable, not running
    for workers in list(_LIVE):
        workers.close(wait=5.0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    from workbench.cli import cli

    cli(args=argv, prog_name="workbench")


if __name__ == "__main__":
    main(sys.argv[1:])
