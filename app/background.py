"""Long computations of the dashboard, each in a background thread: the request that starts
one returns at once with the run, whose id the page keeps and polls (`dcc.Interval`): its
progress while it runs, its result when it is done; the page can cancel it. A run's id is a
random token, only ever looked up among the runs of this server's `Runs`.

A thread cannot be killed from outside, so a run stops itself, raising `Stopped` once it is
cancelled or past its time limit:
- cooperatively, where its work calls `Run.progress` or `Run.stage` (or `Run.check`): between
  two steps, never in the middle of one. The model-running analyses (the patching sweep, the
  probes) stop only so: between batched passes no hook is on the shared model.
- or, for pure-Python work started with `traced=True` (compiling a RASP program, ACDC on a
  model of its own), anywhere: a trace function on the worker thread (`sys.settrace`, which
  sees every Python function call there) checks every few hundred calls. A traced run reads
  as cancelled at once, whatever its thread is still unwinding; a cooperative one once it
  reaches its next step (it may hold a model's lock until then).

`Stopped` is a BaseException, so that the work's own `except Exception` cannot swallow it.
`within(seconds, what)` bounds short work in the request thread (parsing a program) the
same way."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.respond import MAX_MESSAGE
from workbench.errors import InputError, WorkbenchError

LOG = logging.getLogger(__name__)
CHECK_EVERY = 256  # Python calls between two looks at the cancel flag and the clock

RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT = "running", "done", "failed", "cancelled", "timed out"


class Stopped(BaseException):
    """Raised in a run's work to stop it: its status (cancelled, or timed out) is the
    argument."""


@dataclass(frozen=True)
class RunState:
    """What the page shows of a run: its status (running, done, failed, cancelled or timed
    out), the steps done of how many (total 0 until known), what it is doing, its error
    message, its result (when done), how long it has run and its time limit (None: none)."""

    status: str
    done: int
    total: int
    stage: str
    error: str
    result: Any
    seconds: float
    limit_s: float | None

    @property
    def running(self) -> bool:
        return self.status == RUNNING


class Run:
    """One computation: where it stands, and what its work calls to report progress (each
    report stops a cancelled run there). A run made alone (tests, notebooks) records the
    progress of work called directly."""

    def __init__(
        self, key: str | None = None, limit_s: float | None = None, traced: bool = False
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.key = key  # what it computes: a second request for the same key joins it
        self.limit_s, self.traced = limit_s, traced
        self.started, self.ended = time.monotonic(), None
        self.status, self.done, self.total, self._stage = RUNNING, 0, 0, "starting"
        self.error, self.result = "", None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def state(self) -> RunState:
        with self._lock:
            end = self.ended if self.ended is not None else time.monotonic()
            return RunState(
                self.status,
                self.done,
                self.total,
                self._stage,
                self.error,
                self.result,
                end - self.started,
                self.limit_s,
            )

    def stage(self, text: str) -> None:
        """Say what the run does now (loading, preparing...); stops a stopped run here."""
        with self._lock:
            self._stage = text
        self.check()

    def progress(self, done: int, total: int) -> None:
        """`done` steps of `total`; stops a stopped run here."""
        with self._lock:
            self.done, self.total = done, total
        self.check()

    def check(self) -> None:
        """Raise `Stopped` if the run is cancelled or past its time limit."""
        if self._stop.is_set():
            raise Stopped(CANCELLED)
        if self.limit_s is not None and time.monotonic() - self.started > self.limit_s:
            raise Stopped(TIMED_OUT)

    def cancel(self) -> RunState:
        """Stop the work at its next check; a traced run reads as cancelled at once."""
        self._stop.set()
        if self.traced:
            self._end(CANCELLED)
        return self.state()

    def _end(self, status: str, result: Any = None, error: str = "") -> None:
        with self._lock:  # the first outcome stays: a cancel is not undone by a late result
            if self.status != RUNNING:
                return
            self.status, self.result, self.error = status, result, error
            self.ended = time.monotonic()


class Runs:
    """This server's runs of one kind by id: at most `max_running` at once (a further one is
    refused with a message), and the last `keep` finished ones (older ones are forgotten:
    the page says to run again)."""

    def __init__(self, what: str, max_running: int = 2, keep: int = 16) -> None:
        self.what = what  # "patching run": how messages name a run
        self.max_running, self.keep = max_running, keep
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def start(
        self,
        work: Callable[[Run], Any],
        *,
        key: str | None = None,
        limit_s: float | None = None,
        traced: bool = False,
        replaces: object = None,
    ) -> Run:
        """A run of `work(run)` in a new thread (or, given a `key`, the running run of the
        same key): its return value becomes the run's result, a `WorkbenchError` its
        message. `limit_s`: a time limit; `traced`: stop pure-Python work anywhere;
        `replaces`: the id of the run this one takes the place of (a page's last run, a
        value from the browser), cancelled if it still runs."""
        if (old := self.find(replaces)) is not None:
            old.cancel()
        with self._lock:
            running = [run for run in self._runs.values() if run.status == RUNNING]
            same = next((run for run in running if key is not None and run.key == key), None)
            if same is not None:
                return same
            if len(running) >= self.max_running:
                raise InputError(
                    f"the server is busy with {len(running)} {self.what}s; wait for one to "
                    "finish, or cancel one"
                )
            run = Run(key, limit_s, traced)
            self._runs[run.id] = run
            self._forget_old()
        name = f"{self.what.replace(' ', '-')}-{run.id}"
        thread = threading.Thread(target=self._work, args=(run, work), name=name, daemon=True)
        thread.start()  # daemon: a server that stops does not wait for its runs
        return run

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

    def find(self, run_id: object) -> Run | None:
        """The run with this id, or None (no run started yet, or a forgotten one)."""
        with self._lock:
            return self._runs.get(run_id) if isinstance(run_id, str) else None

    def cancel(self, run_id: object) -> RunState:
        return self.get(run_id).cancel()

    def _work(self, run: Run, work: Callable[[Run], Any]) -> None:
        if run.traced:
            calls = [0]

            def tracer(frame, event, arg):  # sys.settrace's signature
                calls[0] += 1
                if calls[0] % CHECK_EVERY == 0:
                    run.check()
                return None  # no line events: the calls alone

            sys.settrace(tracer)
        try:
            result = work(run)
        except Stopped as stop:
            run._end(str(stop))
        except WorkbenchError as exc:
            message = str(exc)
            run._end(FAILED, error=message[:MAX_MESSAGE] + " ..." * (len(message) > MAX_MESSAGE))
        except Exception:
            LOG.exception("background %s failed", self.what)
            run._end(FAILED, error="internal error (logged on the server); try other settings")
        else:
            run._end(DONE, result)
        finally:
            if run.traced:
                sys.settrace(None)

    def _forget_old(self) -> None:
        finished = [r for r in self._runs.values() if r.status != RUNNING]
        for run in sorted(finished, key=lambda r: r.started)[: max(0, len(finished) - self.keep)]:
            del self._runs[run.id]


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Run the block for at most `seconds` of this thread's time: past them, an `InputError`
    saying that `what` took too long. A traced run's own checks go on inside the block."""
    outer = sys.gettrace()
    end = time.monotonic() + seconds
    calls, expired = [0], [False]

    def tracer(frame, event, arg):
        calls[0] += 1
        if calls[0] % CHECK_EVERY == 0 and time.monotonic() > end:
            expired[0] = True
            raise Stopped(TIMED_OUT)
        return outer(frame, event, arg) if outer is not None else None

    sys.settrace(tracer)
    try:
        yield
    except Stopped:
        if not expired[0]:
            raise  # the run around the block was stopped
        raise InputError(
            f"{what} took more than {seconds:.0f} s; the dashboard stops it there: "
            "shorten the program or the input"
        ) from None
    finally:
        sys.settrace(outer)
