"""Leases on running jobs: which process runs a job, and until when it is presumed alive.

A job's row holds its owner (host, pid and a random token: pids are reused) and an expiry.
The owner's heartbeat, a background thread, pushes the expiry forward every quarter of the
lease while the job computes, and every checkpoint does too. A killed process stops
renewing, so its lease expires and another process may take the job (`JobStore.acquire`,
`workbench discover --resume`); before that, taking it needs `--steal`. A process that
lost its lease (stolen, or expired while it was stalled) stops at its next write."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import JobLeaseError, WorkbenchError

if TYPE_CHECKING:
    from workbench.store import JobStore


def make_owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def describe(owner: str | None) -> str:
    """'process 1234 on host-a' for an owner string."""
    if owner is None:
        return "no process"
    host, pid, _ = owner.rsplit("/", 2)
    return f"process {pid} on {host}"


def clock_time(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def busy_message(job: Any, now: float) -> str:
    """Why a job whose owner still holds its lease cannot be taken, and what to do."""
    left = max(0.0, (job.lease_until or now) - now)
    return (
        f"job {job.id} is running in {describe(job.owner)} since {clock_time(job.leased)} "
        f"(its heartbeat holds the lease until {clock_time(job.lease_until)}, {left:.0f} s "
        "from now): wait for it to finish; if that process has died, resume the job once "
        "the lease has expired (workbench jobs list shows it as interrupted), or pass "
        "--steal to take it over now"
    )


def taken_message(job: Any, owner: str) -> str:
    """Why this process may no longer write to a job it was running."""
    if job.owner != owner and job.owner is not None:
        return (
            f"job {job.id} was taken over by {describe(job.owner)} at "
            f"{clock_time(job.leased)} (--steal, or this process's lease expired): this "
            "process stopped writing to it"
        )
    return f"job {job.id} is {job.status}, not running in this process: nothing was written"


class Heartbeat:
    """Renews a job's lease every `every` seconds in a daemon thread, from entering the
    context until leaving it. Entering checks that the lease is this store's."""

    def __init__(self, store: JobStore, job_id: str, every: float) -> None:
        self.store, self.job_id, self.every = store, job_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        if not self.store.renew(self.job_id):
            raise JobLeaseError(taken_message(self.store.get(self.job_id), self.store.owner))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop renewing, and wait until a renewal in flight has committed: after this, a
        release of the lease stays released."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.store.renew(self.job_id):
                    return  # taken over or finished: the next write says so
            except WorkbenchError:
                continue  # the store was locked for a while: the next beat retries
