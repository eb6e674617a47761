"""Pure-Python work that never runs in a request thread (compiling and checking a RASP
program, ACDC on it), stopped from outside; the model-running sweeps of the patching page use
`app.background`, whose runs stop cooperatively between batched passes. (Two runners: to be
made one.) Each task runs in a worker thread of its own, reports its progress, and stops when it is cancelled or runs past its time limit. The page
that started it keeps the task's id and polls (`dcc.Interval`); the id is a random token that
the server looks up among its own tasks, never anything else.

A thread cannot be killed from outside, so a task stops itself: a trace function on the
worker thread (`sys.settrace`, which sees every Python function call there) raises `Stopped`
inside the work as soon as the task is cancelled or out of time, between any two calls of
Python code: the parser, the compiler and ACDC's batches all stop within a call. `Stopped`
is a BaseException, so that the work's own `except Exception` cannot swallow it. A task
marked cancelled is reported so at once, whatever its thread is still unwinding.

`within(seconds)` bounds short work that runs in the request thread (parsing a program, or
interpreting it on a short input) the same way."""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import InputError, WorkbenchError

LOG = logging.getLogger(__name__)
CHECK_EVERY = 256  # Python calls between two looks at the cancel flag and the clock

RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT = "running", "done", "failed", "cancelled", "timed out"


class Stopped(BaseException):
    """Raised in a task's thread to stop its work (cancelled, or past its time limit)."""


@dataclass
class Task:
    """One piece of background work: its progress, its outcome, and the flag that stops it."""

    id: str
    kind: str
    key: str  # what it computes: a second request for the same thing joins this task
    limit_s: float
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    done: int = 0
    total: int = 0
    status: str = RUNNING
    message: str = ""  # why it failed
    result: Any = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def progress(self, done: int, total: int) -> None:
        """Record progress (from the work), and stop here if the task is stopped."""
        self.done, self.total = done, total
        self.check()

    def check(self) -> None:
        """Raise `Stopped` in the work if it is cancelled or out of time."""
        if self._stop.is_set():
            raise Stopped(CANCELLED)
        if time.monotonic() - self.started > self.limit_s:
            raise Stopped(TIMED_OUT)

    def cancel(self) -> None:
        """Stop the work; the task reads as cancelled from now on."""
        self._stop.set()
        self._end(CANCELLED, "")

    def describe(self, what: str) -> str:
        """One line for the page: `what` and where the task stands."""
        count = f" {self.done}/{self.total}" if self.total else ""
        match self.status:
            case "running":
                return f"{what}:{count} running for {self.elapsed:.1f} s"
            case "done":
                return f"{what}: done in {self.elapsed:.1f} s"
            case "timed out":
                return f"{what}: stopped after its limit of {self.limit_s:.0f} s"
            case "failed":
                return f"{what} failed: {self.message}"
        return f"{what}: {self.status}"

    def _end(self, status: str, message: str, result: Any = None) -> None:
        with self._lock:  # the first outcome stays: a cancel is not undone by a late result
            if self.status != RUNNING:
                return
            self.status, self.message, self.result = status, message, result
            self.ended = time.monotonic()


class Tasks:
    """A server's background tasks by id: at most `max_running` of one kind run at once (a
    further one is refused with a message), and the `keep` most recent are remembered."""

    def __init__(self, max_running: int = 2, keep: int = 64) -> None:
        self.max_running, self.keep = max_running, keep
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, key: str, work: Callable[[Task], Any], limit_s: float) -> Task:
        """A task running `work(task)` in a new thread, or the running task that computes
        the same `key` already."""
        with self._lock:
            running = [t for t in self._tasks.values() if t.kind == kind and t.running]
            same = next((t for t in running if t.key == key), None)
            if same is not None:
                return same
            if len(running) >= self.max_running:
                raise InputError(
                    f"the server is busy with {len(running)} {kind} tasks; wait for one to "
                    "finish or cancel yours"
                )
            task = Task(secrets.token_hex(8), kind, key, limit_s)
            self._tasks[task.id] = task
            while len(self._tasks) > self.keep:
                oldest = next(iter(self._tasks))
                self._tasks.pop(oldest).cancel()
        thread = threading.Thread(target=_run, args=(task, work), name=f"{kind}-{task.id}")
        thread.daemon = True  # a server that stops does not wait for its tasks
        thread.start()
        return task

    def get(self, task_id: object, kind: str) -> Task:
        """The task of that id (browser data: any type), which must be of `kind`."""
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.kind != kind:
            raise InputError(f"no such {kind} task on this server (it may have been dropped)")
        return task

    def find(self, task_id: object, kind: str) -> Task | None:
        """The task of that id, or None when there is none (no task started yet)."""
        try:
            return self.get(task_id, kind)
        except InputError:
            return None


def _run(task: Task, work: Callable[[Task], Any]) -> None:
    calls = [0]

    def tracer(frame, event, arg):  # sys.settrace's signature
        calls[0] += 1
        if calls[0] % CHECK_EVERY == 0:
            task.check()
        return None  # no line events: the calls alone

    sys.settrace(tracer)
    try:
        result = work(task)
        task._end("done", "", result)
    except Stopped as stop:
        task._end(str(stop), "")
    except WorkbenchError as error:
        task._end(FAILED, str(error)[:500])
    except Exception:
        LOG.exception("background %s task failed", task.kind)
        task._end(FAILED, "internal error (logged on the server)")
    finally:
        sys.settrace(None)


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Run the block for at most `seconds` of this thread's time: past them, an `InputError`
    saying that `what` took too long. A task's own checks go on inside the block."""
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
            raise  # the task around the block was stopped
        raise InputError(
            f"{what} took more than {seconds:.0f} s; the dashboard stops it there: "
            "shorten the program or the input"
        ) from None
    finally:
        sys.settrace(outer)
