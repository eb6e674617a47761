"""The job store: long CLI jobs (circuit discovery, sweeps) write their settings, progress,
results, curves, versions and resumable state into one SQLite file as they go.

Every write is one transaction in write-ahead-log mode, so a job killed at any moment (even
SIGKILL) leaves the store consistent: it holds every write that committed and none of the
one in flight. A job restarts from its last saved state (`state`), losing no finished work.
Several processes may share a store (SQLite locks it; writers wait up to `timeout`)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,          -- running, done, failed
    settings TEXT NOT NULL,        -- JSON
    versions TEXT NOT NULL,        -- JSON
    created REAL NOT NULL,
    updated REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result TEXT,                   -- JSON, when done
    error TEXT                     -- when failed
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


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    settings: dict[str, Any]
    versions: dict[str, str]
    created: float
    updated: float
    done: int
    total: int
    result: dict[str, Any] | None
    error: str | None


class JobStore:
    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def create(self, kind: str, settings: dict[str, Any], versions: dict[str, str]) -> str:
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, status, settings, versions, created, updated) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (job_id, kind, json.dumps(settings), json.dumps(versions), now, now),
            )
        return job_id

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                known = [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY created")]
                hint = f"; jobs in {self.path}: {', '.join(known[-5:])}" if known else ""
                raise InputError(f"no job {job_id!r} in {self.path}{hint}")
        return _job(row)

    def list(self) -> list[Job]:
        with self._connect() as db:
            return [_job(r) for r in db.execute("SELECT * FROM jobs ORDER BY created")]

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
        """Save progress in one transaction: resumable state, new scores, a curve point."""
        with self._transaction() as db:
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
            sets, values = ["updated = ?", "status = 'running'"], [time.time()]
            for column, value in (("done", done), ("total", total)):
                if value is not None:
                    sets.append(f"{column} = ?")
                    values.append(value)
            db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", (*values, job_id))

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
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'done', result = ?, error = NULL, updated = ? "
                "WHERE id = ?",
                (json.dumps(result), time.time(), job_id),
            )

    def fail(self, job_id: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                (error, time.time(), job_id),
            )


def _job(row: tuple) -> Job:
    (job_id, kind, status, settings, versions, created, updated, done, total, result, error) = row
    return Job(
        job_id,
        kind,
        status,
        json.loads(settings),
        json.loads(versions),
        created,
        updated,
        done,
        total,
        None if result is None else json.loads(result),
        error,
    )
