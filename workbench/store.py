"""The job store: long CLI jobs (circuit discovery, sweeps) write their settings, progress,
results, curves, versions and resumable state into one SQLite file as they go.

Every write is one transaction in write-ahead-log mode, so a job killed at any moment (even
SIGKILL) leaves the store consistent: it holds every write that committed and none of the
one in flight. A job restarts from its last saved state (`state`), losing no finished work.
Several processes may share a store (SQLite locks it; writers wait up to `timeout`).

A running job holds a lease (`workbench.lease`): its owner (host, pid, token) and an expiry
that a heartbeat pushes forward. Only the owner writes to the job; another process takes it
only once the lease has expired, or when told to steal it. A running job whose lease has
expired is reported as `interrupted`: its process died and it can be resumed.

The store is opened in one of three ways: `create` (the default; makes the file and its
folders when missing), `create=False` (the file must exist; writes allowed) and `readonly`
(the file must exist; nothing is ever written, not even the schema)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError, JobLeaseError
from workbench.files import file_above
from workbench.lease import Heartbeat, busy_message, make_owner, taken_message

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,          -- queued, running, done, failed
    settings TEXT NOT NULL,        -- JSON
    versions TEXT NOT NULL,        -- JSON
    created REAL NOT NULL,
    updated REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result TEXT,                   -- JSON, when done
    error TEXT,                    -- when failed
    owner TEXT,                    -- host/pid/token of the process that runs it
    leased REAL,                   -- when that owner took it
    lease_until REAL               -- the owner's lease expires then unless renewed
);
CREATE TABLE IF NOT EXISTS scores (
    job TEXT NOT NULL REFERENCES jobs(id),
    key TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (job, key)
);
CREATE TABLE IF NOT EXISTS curves (
    job TEXT NOT NULL REFERENCES jobs(id),
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    PRIMARY KEY (job, name, step)
);
CREATE TABLE IF NOT EXISTS state (
    job TEXT PRIMARY KEY REFERENCES jobs(id),
    value TEXT NOT NULL            -- JSON
);
"""
COLUMNS = (
    *("id", "kind", "status", "settings", "versions", "created", "updated"),
    *("done", "total", "result", "error", "owner", "leased", "lease_until"),
)
ADDED = {"owner": "TEXT", "leased": "REAL", "lease_until": "REAL"}  # since the first schema
SQLITE_HEADER = b"SQLite format 3\x00"
LEASE_SECONDS = 60.0
# SQLite's JSON functions (built in since 3.38); a result with NaN is not JSON to SQLite < 3.42
WITHOUT_SCORES = "CASE WHEN json_valid(result) THEN json_remove(result, '$.scores') ELSE result END"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str  # queued, running, interrupted (running, lease expired), done, failed
    settings: dict[str, Any]
    versions: dict[str, str]
    created: float
    updated: float
    done: int
    total: int
    result: dict[str, Any] | None
    error: str | None
    owner: str | None = None
    leased: float | None = None
    lease_until: float | None = None


class JobStore:
    def __init__(
        self,
        path: str | Path,
        timeout: float = 30.0,
        *,
        create: bool = True,
        readonly: bool = False,
        lease: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`lease`: seconds this process's leases last without a heartbeat. `clock`: the
        time (tests pass a fake one; every process must share the wall clock)."""
        self.path = Path(path)
        self.timeout, self.readonly, self.lease, self.clock = timeout, readonly, lease, clock
        self.owner = make_owner()
        check_path(self.path, must_exist=readonly or not create)
        if readonly:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the job store {self.path}: {error}") from None
        # The tables are committed before the file turns to write-ahead logging: switching a
        # new file to it writes the header of a database without tables, which a reader in
        # another process (the dashboard's) would take for a file that is not a job store.
        with self._transaction(wal=False) as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            have = _columns(db)
            for column, kind in ADDED.items():  # a store written before leases existed
                if column not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        with self._connect():  # turns the file to write-ahead logging
            pass

    @contextmanager
    def _connect(self, *, wal: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise InputError(f"cannot open the job store {self.path}: {error}") from None
        try:
            if wal and not self.readonly:  # a reader sets nothing: the mode is in the file
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.Error as error:
            hint = ""
            if "locked" in str(error):
                hint = f" (another process held it for over {self.timeout:g} s: try again)"
            raise InputError(f"job store {self.path}: {error}{hint}") from None
        finally:
            db.close()

    @contextmanager
    def _transaction(self, *, wal: bool = True) -> Iterator[sqlite3.Connection]:
        with self._connect(wal=wal) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def create(
        self,
        kind: str,
        settings: dict[str, Any],
        versions: dict[str, str],
        *,
        queued: bool = False,
    ) -> str:
        """A new job, running under this store's lease, or `queued` (no owner yet: whoever
        runs it takes it with `acquire`)."""
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        now = self.clock()
        status, lease = ("queued", (None, None, None)) if queued else ("running", self._lease(now))
        row = (job_id, kind, status, json.dumps(settings), json.dumps(versions), now, now, *lease)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, status, settings, versions, created, updated, "
                "owner, leased, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        return job_id

    def _lease(self, now: float) -> tuple[str, float, float]:
        """(owner, taken at, expiry) of a lease this store takes now."""
        return self.owner, now, now + self.lease

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            row = db.execute(f"SELECT {_select(db)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                known = [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY created")]
                hint = f"; jobs in {self.path}: {', '.join(known[-5:])}" if known else ""
                raise InputError(f"no job {job_id!r} in {self.path}{hint}")
        return _job(row, self.clock())

    def list(self, *, scores: bool = True) -> list[Job]:
        """Every job, oldest first. `scores=False` leaves the edge scores (one per edge of
        the model's graph: large) out of each result, for a listing read often."""
        with self._connect() as db:
            select = _select(db) if scores else _select(db, result=WITHOUT_SCORES)
            rows = db.execute(f"SELECT {select} FROM jobs ORDER BY created").fetchall()
        now = self.clock()
        return [_job(r, now) for r in rows]

    def acquire(self, job_id: str, *, steal: bool = False) -> Job:
        """Take the job's lease for this store's owner, in one transaction: a queued,
        interrupted or failed job, or (with `steal`) one whose owner still holds it."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_select(db)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise InputError(f"no job {job_id!r} in {self.path}")
            now = self.clock()
            self._check_takeable(_job(row, now), now, steal)
            db.execute(
                "UPDATE jobs SET status = 'running', error = NULL, owner = ?, leased = ?, "
                "lease_until = ?, updated = ? WHERE id = ?",
                (*self._lease(now), now, job_id),
            )
        return self.get(job_id)

    def check_free(self, job_id: str, *, steal: bool = False) -> Job:
        """The job, if `acquire` would take it now; the same errors otherwise. Writes nothing."""
        job = self.get(job_id)
        self._check_takeable(job, self.clock(), steal)
        return job

    def _check_takeable(self, job: Job, now: float, steal: bool) -> None:
        if job.status == "done":
            raise InputError(f"job {job.id} is already done: see workbench jobs show {job.id}")
        if job.status == "running" and job.owner != self.owner and not steal:
            raise JobLeaseError(busy_message(job, now))

    def renew(self, job_id: str) -> bool:
        """Push this owner's lease forward; False when the job is no longer ours to run."""
        now = self.clock()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'running'",
                (now + self.lease, job_id, self.owner),
            ).rowcount
        return changed == 1

    def heartbeat(self, job_id: str, every: float | None = None) -> Heartbeat:
        """A context that renews the lease every `every` seconds (a quarter of the lease)
        in a background thread while the job computes; it raises at once if the lease is
        not this store's."""
        return Heartbeat(self, job_id, self.lease / 4 if every is None else every)

    def release(self, job_id: str) -> None:
        """End this owner's lease now (Ctrl-C): the job shows as interrupted at once and
        can be resumed without waiting for the lease to expire."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?",
                (self.clock(), job_id, self.owner),
            )

    def checkpoint(
        self,
        job_id: str,
        *,
        state: dict[str, Any] | None = None,
        scores: dict[str, float] | None = None,
        curve: tuple[str, int, float, float] | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """Save progress in one transaction: resumable state, new scores, a curve point.
        It renews the lease, and raises `JobLeaseError` (writing nothing) if another
        process has taken the job over."""
        with self._transaction() as db:
            now = self.clock()
            sets, values = ["updated = ?", "lease_until = ?"], [now, now + self.lease]
            for column, value in (("done", done), ("total", total)):
                if value is not None:
                    sets.append(f"{column} = ?")
                    values.append(value)
            self._owned_update(db, job_id, sets, values)
            if state is not None:
                db.execute(
                    "INSERT OR REPLACE INTO state (job, value) VALUES (?, ?)",
                    (job_id, json.dumps(state)),
                )
            if scores:
                db.executemany(
                    "INSERT OR REPLACE INTO scores (job, key, value) VALUES (?, ?, ?)",
                    [(job_id, k, float(v)) for k, v in scores.items()],
                )
            if curve is not None:
                db.execute(
                    "INSERT OR REPLACE INTO curves (job, name, step, x, y) VALUES (?, ?, ?, ?, ?)",
                    (job_id, *curve),
                )

    def _owned_update(self, db, job_id: str, sets: list[str], values: list) -> None:
        """UPDATE the job's row if this owner runs it; else raise, and the caller's
        transaction rolls back."""
        changed = db.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND owner = ? AND status = 'running'",
            (*values, job_id, self.owner),
        ).rowcount
        if changed != 1:
            row = db.execute(f"SELECT {_select(db)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise InputError(f"no job {job_id!r} in {self.path}")
            raise JobLeaseError(taken_message(_job(row, self.clock()), self.owner))

    def state(self, job_id: str) -> dict[str, Any]:
        self.get(job_id)  # an unknown id is an error
        with self._connect() as db:
            row = db.execute("SELECT value FROM state WHERE job = ?", (job_id,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def scores(self, job_id: str) -> dict[str, float]:
        with self._connect() as db:
            rows = db.execute("SELECT key, value FROM scores WHERE job = ?", (job_id,))
            return dict(rows.fetchall())

    def curves(self, job_id: str) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, x, y FROM curves WHERE job = ? ORDER BY name, step", (job_id,)
            )
            for name, x, y in rows:
                out.setdefault(name, []).append((x, y))
        return out

    def finish(self, job_id: str, result: dict[str, Any]) -> None:
        """Mark the job done with its result; `JobLeaseError` if it is no longer ours."""
        with self._transaction() as db:
            sets = ["status = 'done'", "result = ?", "error = NULL", "updated = ?"]
            self._owned_update(
                db, job_id, [*sets, "lease_until = NULL"], [json.dumps(result), self.clock()]
            )

    def fail(self, job_id: str, error: str) -> None:
        """Mark the job failed, if it is still ours (a new owner's record stands)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', error = ?, updated = ?, lease_until = NULL "
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (error, self.clock(), job_id, self.owner),
            )


def check_path(path: Path, *, must_exist: bool) -> None:
    """Raise a clear error, touching nothing, unless `path` is a job store (or, when it
    need not exist, a path a new store can be made at, or an empty file)."""
    where = f"pass --store a job store file, or a new path such as {path / 'jobs.sqlite'}"
    if path.is_dir():
        raise InputError(f"the job store {path} is a directory: {where}")
    if not path.exists():
        if must_exist:
            raise InputError(
                f"no job store at {path}: pass the --store that workbench discover wrote to"
            )
        if (parent := file_above(path)) is not None:
            raise InputError(f"cannot create the job store {path}: {parent} is a file")
        return
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise InputError(f"cannot read the job store {path}: {error}") from None
    if not head and not must_exist:
        return  # an empty file: SQLite makes a new database in it
    if head != SQLITE_HEADER:
        raise InputError(
            f"{path} is not a job store (not a SQLite file; it was left as it was): {where}"
        )
    tables = _tables(path)
    if "jobs" not in tables and (tables or must_exist):
        raise InputError(
            f"{path} is a SQLite database but not a job store (tables: "
            f"{', '.join(sorted(tables)) or 'none'}); it was left as it was: {where}"
        )


def _tables(path: Path) -> set[str]:
    """The tables of the SQLite file at `path`, read without writing to it (a plain
    connection: a read-only one would leave the write-ahead log's files behind)."""
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error as error:
        raise InputError(f"cannot open the job store {path}: {error}") from None
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise InputError(
            f"cannot read the job store {path}: {error}; it was left as it was"
        ) from None
    finally:
        db.close()


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(jobs)")}


def _select(db: sqlite3.Connection, **instead: str) -> str:
    """The job columns, NULL for those a store from before leases lacks (read-only); a
    column named in `instead` is that expression."""
    have = _columns(db)
    return ", ".join(
        f"{instead[c]} AS {c}" if c in instead else c if c in have else f"NULL AS {c}"
        for c in COLUMNS
    )


def _job(row: tuple, now: float) -> Job:
    fields = dict(zip(COLUMNS, row, strict=True))
    for name in ("settings", "versions", "result"):
        if fields[name] is not None:
            fields[name] = json.loads(fields[name])
    until = fields["lease_until"]
    if fields["status"] == "running" and (until is None or until <= now):
        fields["status"] = "interrupted"  # its process died, or stopped without finishing
    return Job(**fields)
