"""The job store's leases (refusal, expiry, steal, heartbeat, release), its migration of
stores written before leases, and its checks of the store path (nothing touched)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from workbench.errors import InputError, JobLeaseError
from workbench.store import JobStore

OLD_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, settings TEXT NOT NULL,
    versions TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, result TEXT, error TEXT
);
CREATE TABLE scores (job TEXT NOT NULL REFERENCES jobs(id), key TEXT NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (job, key));
CREATE TABLE curves (job TEXT NOT NULL REFERENCES jobs(id), name TEXT NOT NULL,
    step INTEGER NOT NULL, x REAL NOT NULL, y REAL NOT NULL, PRIMARY KEY (job, name, step));
CREATE TABLE state (job TEXT PRIMARY KEY REFERENCES jobs(id), value TEXT NOT NULL);
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def two_processes(path: Path, clock: Clock) -> tuple[JobStore, JobStore]:
    """Two stores on one file, as two processes would open it: distinct owners."""
    a, b = (JobStore(path, lease=10.0, clock=clock) for _ in range(2))
    assert a.owner != b.owner
    return a, b


def test_a_live_lease_refuses_another_owner_until_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    a, b = two_processes(tmp_path / "jobs.sqlite", clock)
    job = a.create("discover", {"method": "acdc"}, {})
    for take in (b.acquire, b.check_free):
        with pytest.raises(JobLeaseError, match=rf"job {job} is running in process \d+ on .*"):
            take(job)
    with pytest.raises(JobLeaseError, match="wait for it to finish.*--steal"):
        b.acquire(job)
    clock.now += 6
    a.checkpoint(job, scores={"e1": 1.0}, done=1)  # a checkpoint renews the lease
    assert b.get(job).lease_until == clock.now + 10
    clock.now += 8
    assert a.renew(job)  # so does a heartbeat
    clock.now += 9.9
    assert b.get(job).status == "running"
    clock.now += 0.2  # past the lease: the process is presumed dead
    assert b.get(job).status == "interrupted" and b.list()[0].status == "interrupted"
    b.acquire(job)
    assert b.get(job).status == "running" and b.get(job).owner == b.owner
    # the old owner stops at its next write, and writes nothing
    with pytest.raises(JobLeaseError, match=f"job {job} was taken over by process"):
        a.checkpoint(job, scores={"e2": 2.0}, done=2)
    with pytest.raises(JobLeaseError):
        a.finish(job, {"edges": []})
    a.fail(job, "late error")  # ignored: the job is b's
    assert not a.renew(job)
    assert b.scores(job) == {"e1": 1.0} and b.get(job).done == 1
    assert b.get(job).status == "running" and b.get(job).error is None
    b.finish(job, {"edges": ["e1"]})
    assert not b.renew(job)  # a finished job has no lease to renew
    with pytest.raises(InputError, match="already done"):
        a.acquire(job)


def test_steal_queue_and_release(tmp_path: Path) -> None:
    clock = Clock()
    a, b = two_processes(tmp_path / "jobs.sqlite", clock)
    live = a.create("discover", {}, {})
    b.acquire(live, steal=True)
    assert b.get(live).owner == b.owner and b.get(live).leased == clock.now
    queued = a.create("discover", {}, {}, queued=True)
    assert a.get(queued).status == "queued" and a.get(queued).owner is None
    with pytest.raises(JobLeaseError, match="not running in this process"):
        a.checkpoint(queued, done=1)  # nobody runs a queued job until it is acquired
    b.acquire(queued)
    b.release(queued)  # Ctrl-C: resumable at once, without waiting for the lease
    assert a.get(queued).status == "interrupted"
    a.acquire(queued)
    a.fail(queued, "RuntimeError: boom")
    failed = b.get(queued)
    assert failed.status == "failed" and failed.lease_until is None
    b.acquire(queued)  # a failed job can be run again
    assert b.get(queued).status == "running" and b.get(queued).error is None


def test_the_heartbeat_renews_the_lease_while_the_job_runs(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("discover", {}, {})
    first = store.get(job).lease_until
    with store.heartbeat(job, every=0.01) as beat:
        deadline = time.time() + 60
        while store.get(job).lease_until == first and time.time() < deadline:
            time.sleep(0.01)
        assert store.get(job).lease_until > first
    assert not beat._thread.is_alive()
    other = JobStore(tmp_path / "jobs.sqlite")
    with pytest.raises(JobLeaseError), other.heartbeat(job):
        pass  # only the lease's owner may run the job


def test_a_release_after_stopping_the_heartbeat_stays_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C releases the lease: a renewal in flight must not commit after the release
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("discover", {}, {})
    real, calls = store.renew, []

    def slow_renew(job_id: str) -> bool:
        calls.append("start")
        time.sleep(0.05)  # a renewal that is slow to commit (a busy store)
        done = real(job_id)
        calls.append("end")
        return done

    monkeypatch.setattr(store, "renew", slow_renew)
    with store.heartbeat(job, every=0.001) as beat:
        while not calls:
            time.sleep(0.001)
        beat.stop()  # waits for the renewal in flight
        assert calls[-1] == "end"
        store.release(job)
        time.sleep(0.1)
    assert calls[-1] == "end" and store.get(job).status == "interrupted"


def old_store(path: Path) -> None:
    """A store as the workbench wrote it before leases: one running job, one done."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for job_id, status in (("old-running", "running"), ("old-done", "done")):
        db.execute(
            "INSERT INTO jobs (id, kind, status, settings, versions, created, updated) "
            "VALUES (?, 'discover', ?, ?, '{}', 1, 1)",
            (job_id, status, json.dumps({"method": "eap"})),
        )
    db.commit()
    db.close()


def columns(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    finally:
        db.close()


def test_an_old_store_is_read_as_it_is_and_migrated_when_written(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    old_store(path)
    before = columns(path)
    reader = JobStore(path, readonly=True)
    statuses = {job.id: job.status for job in reader.list()}
    assert statuses == {"old-running": "interrupted", "old-done": "done"}
    assert columns(path) == before  # reading wrote nothing
    writer = JobStore(path, create=False)
    assert columns(path) == [*before, "owner", "leased", "lease_until"]
    writer.acquire("old-running")
    assert writer.get("old-running").status == "running"
    JobStore(path)  # migrating twice is a no-op
    assert len(columns(path)) == len(before) + 3


def test_store_paths_that_are_not_stores_are_refused_untouched(tmp_path: Path) -> None:
    random_bytes, text = tmp_path / "random.bin", tmp_path / "notes.txt"
    random_bytes.write_bytes(os.urandom(4096))
    text.write_text("not a database\n" * 50)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = {
        random_bytes: "not a job store (not a SQLite file",
        text: "not a job store (not a SQLite file",
        other: "a SQLite database but not a job store (tables: people)",
        folder: "is a directory",
    }
    for path, message in cases.items():
        before = sorted(p.name for p in tmp_path.rglob("*"))
        content = None if path.is_dir() else path.read_bytes()
        for options in ({}, {"create": False}, {"readonly": True}):
            with pytest.raises(InputError, match=re.escape(message)):
                JobStore(path, **options)
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, path
        assert content is None or path.read_bytes() == content, path
    missing = tmp_path / "new" / "jobs.sqlite"
    for options in ({"create": False}, {"readonly": True}):
        with pytest.raises(InputError, match="no job store at"):
            JobStore(missing, **options)
    assert not missing.parent.exists()
    with pytest.raises(InputError, match="notes.txt is a file"):
        JobStore(text / "jobs.sqlite")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(InputError, match="not a job store"):
        JobStore(empty, readonly=True)
    JobStore(empty).create("discover", {}, {})  # an empty file becomes a new store
    JobStore(missing).create("discover", {}, {})  # and so does a new path
    assert [job.kind for job in JobStore(missing, readonly=True).list()] == ["discover"]


def test_a_listing_without_scores_keeps_everything_else(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    result = {"edges": ["a->b"], "scores": {"a->b": 1.5, "c->d": 0.0}, "metric": "kl"}
    done = store.create("discover", {"method": "eap"}, {})
    store.finish(done, result)
    odd = store.create("discover", {"method": "eap"}, {})
    store.finish(odd, {"edges": [], "scores": {"x->y": float("nan")}})  # not JSON to SQLite
    running = store.create("discover", {"method": "acdc"}, {})
    light = {job.id: job for job in store.list(scores=False)}
    assert light[done].result == {"edges": ["a->b"], "metric": "kl"}
    assert light[odd].result["scores"]["x->y"] != light[odd].result["scores"]["x->y"]  # NaN
    assert light[running].result is None and light[running].status == "running"
    whole = {job.id: job for job in store.list()}
    assert whole[done].result == result
    assert [vars(j) | {"result": None} for j in whole.values()] == [
        vars(j) | {"result": None} for j in light.values()
    ]


class Rows(list):
    """A statement's rows, read as from its cursor."""

    def fetchone(self):
        return self[0] if self else None

    def fetchall(self):
        return list(self)


def test_a_reader_never_sees_a_new_store_without_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every statement that makes a new store, outside its transaction, the file is
    either empty (a reader shows no jobs) or a job store: the dashboard reads the store
    while a worker makes it (CI once caught it between the write-ahead-log switch and the
    tables)."""
    path, connect, seen = tmp_path / "jobs.sqlite", sqlite3.connect, []

    class Watched(sqlite3.Connection):
        def execute(self, *args):
            rows = super().execute(*args).fetchall()  # a statement done holds no lock
            # inside a transaction, SQLite's lock makes a reader wait for its end
            if path.stat().st_size and not self.in_transaction:
                seen.append(args[0])
                with monkeypatch.context() as reading:  # the reader's connections unwatched
                    reading.setattr(sqlite3, "connect", connect)
                    assert JobStore(path, readonly=True).list() == [], args[0]
            return Rows(rows)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, **k, factory=Watched))
    JobStore(path)
    monkeypatch.undo()
    assert seen, "no statement ran on a non-empty store"
    assert JobStore(path, readonly=True).list() == []
    with connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
