"""Long computations of the dashboard, each in a background thread: the request that starts
one returns at once with the run's id, and the page polls the run's progress (`dcc.Interval`),
reads its result when it is done, and can cancel it. A run's id is unguessable and only ever
looked up among this server's runs. The work reports progress through `Progress.report`,
which raises `Cancelled` once the run is cancelled, so a run stops between two of its steps
(never in the middle of one, where a shared model may carry its hooks)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.respond import MAX_MESSAGE
from workbench.errors import InputError, WorkbenchError

LOG = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a run by `Progress.report` once the run is cancelled."""


@dataclass(frozen=True)
class RunState:
    """What the page shows of a run: its status (running, done, failed or cancelled), the
    steps done of how many (total 0 until known), what it is doing, its error message, its
    result (when done) and how long it has run."""

    status: str
    done: int
    total: int
    stage: str
    error: str
    result: object
    seconds: float


@dataclass
class Run:
    id: str
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    done: int = 0
    total: int = 0
    stage: str = "starting"
    error: str = ""
    result: object = None
    ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self) -> RunState:
        with self.lock:
            end = self.ended if self.ended is not None else time.monotonic()
            return RunState(
                self.status,
                self.done,
                self.total,
                self.stage,
                self.error,
                self.result,
                end - self.started,
            )

    def end(self, status: str, result: object = None, error: str = "") -> None:
        with self.lock:
            self.status, self.result, self.error = status, result, error
            self.ended = time.monotonic()


class Progress:
    """What a run's work is given: report progress (and stop there once cancelled)."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def stage(self, text: str) -> None:
        """Say what the run does now (loading, preparing...); stops a cancelled run."""
        with self._run.lock:
            self._run.stage = text
        self.check()

    def report(self, done: int, total: int) -> None:
        """`done` steps of `total`; raises `Cancelled` once the run is cancelled."""
        with self._run.lock:
            self._run.done, self._run.total = done, total
        self.check()

    def check(self) -> None:
        if self._run.cancel.is_set():
            raise Cancelled


class Runs:
    """This server's background runs by id: at most `max_running` at once, and the last
    `keep` finished ones (older ones are forgotten: the page says to run again)."""

    def __init__(self, what: str, max_running: int = 2, keep: int = 16) -> None:
        self.what = what  # "patching run": how messages name a run
        self.max_running, self.keep = max_running, keep
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def start(self, work: Callable[[Progress], object]) -> str:
        """Start `work(progress)` in a thread; its return value becomes the run's result, a
        `WorkbenchError` its message. The run's id, at once."""
        with self._lock:
            running = sum(run.status == "running" for run in self._runs.values())
            if running >= self.max_running:
                raise InputError(
                    f"the server is busy with {running} {self.what}s; wait for one to finish, "
                    "or cancel one"
                )
            run = Run(secrets.token_urlsafe(16))
            self._runs[run.id] = run
            self._forget_old()
        thread = threading.Thread(target=self._work, args=(run, work), daemon=True)
        thread.start()
        return run.id

    def get(self, run_id: object) -> Run:
        """The run with this id (a value from the browser: any type)."""
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise InputError(
                f"this {self.what} is not on the server (it restarted, or the run is long "
                "finished): run it again"
            )
        return run

    def cancel(self, run_id: object) -> RunState:
        run = self.get(run_id)
        run.cancel.set()
        return run.state()

    def _work(self, run: Run, work: Callable[[Progress], object]) -> None:
        try:
            result = work(Progress(run))
        except Cancelled:
            run.end("cancelled")
        except WorkbenchError as exc:
            message = str(exc)
            run.end("failed", error=message[:MAX_MESSAGE] + (" ..." * (len(message) > MAX_MESSAGE)))
        except Exception:
            LOG.exception("background %s failed", self.what)
            run.end("failed", error="internal error (logged on the server); try other settings")
        else:
            run.end("done", result)

    def _forget_old(self) -> None:
        finished = [r for r in self._runs.values() if r.status != "running"]
        for run in sorted(finished, key=lambda r: r.started)[: max(0, len(finished) - self.keep)]:
            del self._runs[run.id]
