"""The dashboard's background runs (`app.background`): bounded and looked up by id only; a
cooperative run stops at its next step once cancelled or out of time, a traced one anywhere
(and reads as cancelled at once); a second request for the same key joins the running run;
`within` bounds work in the request thread. The pages' own tests drive it through the
server (patching, probes, RASP)."""

from __future__ import annotations

import threading
import time

import pytest

from app.background import Run, Runs, within
from tests.app.helpers import ended
from workbench.errors import InputError


def python_loop(run: Run) -> None:
    def step() -> None:  # Python calls: where a traced run stops
        pass

    while True:
        step()


def test_runs_are_bounded_and_looked_up_by_id_only() -> None:
    runs = Runs("test run", max_running=1, keep=2)
    gate = threading.Event()
    first = runs.start(lambda run: gate.wait(10) and "one")
    with pytest.raises(InputError, match="busy with 1 test runs; wait for one to finish"):
        runs.start(lambda run: "two")
    gate.set()
    assert ended(first).result == "one"
    for i in range(3):
        assert ended(runs.start(lambda run, i=i: i)).result == i
    with pytest.raises(InputError, match="this test run is not on the server"):
        runs.get(first.id)  # the oldest finished runs are forgotten
    for garbage in (["id"], None, 5, first.id[:-1]):
        with pytest.raises(InputError, match="not on the server"):
            runs.get(garbage)
        assert runs.find(garbage) is None
    assert len({runs.start(lambda run: 0).id for _ in range(2)}) == 2  # fresh tokens


def test_a_cooperative_run_stops_at_its_next_step() -> None:
    runs = Runs("test run")
    reached, release = threading.Event(), threading.Event()

    def work(run: Run) -> str:
        run.stage("counting")
        run.progress(1, 3)
        reached.set()
        release.wait(10)
        run.progress(2, 3)  # stops here once cancelled
        return "all"

    run = runs.start(work)
    reached.wait(5)
    state = runs.cancel(run.id)
    assert state.status == "running" and (state.done, state.total) == (1, 3)  # until its step
    assert state.stage == "counting"
    release.set()
    state = ended(run)
    assert state.status == "cancelled" and state.result is None and state.done == 2


def test_a_cooperative_run_stops_at_its_time_limit() -> None:
    def work(run: Run) -> None:
        for i in range(10**6):
            time.sleep(0.01)
            run.progress(i, 10**6)

    state = ended(Runs("test run").start(work, limit_s=0.2))
    assert state.status == "timed out" and state.limit_s == 0.2 and state.done > 0


def test_a_traced_run_stops_anywhere_and_reads_cancelled_at_once() -> None:
    runs = Runs("test run")
    run = runs.start(python_loop, traced=True)
    time.sleep(0.1)
    assert run.cancel().status == "cancelled"  # at once
    time.sleep(0.2)
    assert not any(t.name.endswith(run.id) for t in threading.enumerate())  # it stopped
    assert ended(runs.start(python_loop, limit_s=0.2, traced=True)).status == "timed out"

    def busy(run: Run) -> str:
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            pass
        return "done"

    assert ended(runs.start(busy, limit_s=0.0)).result == "done"  # untraced, it never checks


def test_the_same_key_joins_the_running_run() -> None:
    runs = Runs("test run", max_running=1)
    gate = threading.Event()
    first = runs.start(lambda run: gate.wait(10) and "one", key="k")
    assert runs.start(lambda run: "two", key="k") is first  # not refused: joined
    gate.set()
    assert ended(first).result == "one"
    assert ended(runs.start(lambda run: "two", key="k")).result == "two"  # a new run


def test_failures_are_messages() -> None:
    runs = Runs("test run")

    def bad(run: Run) -> None:
        raise InputError("x" * 1000)

    def broken(run: Run) -> None:
        raise RuntimeError("/secret/path")

    state = ended(runs.start(bad))
    assert state.status == "failed" and state.error.endswith("x ...") and len(state.error) < 600
    state = ended(runs.start(broken))
    assert state.status == "failed" and "/secret" not in state.error and "internal" in state.error


def test_within_bounds_work_in_the_calling_thread() -> None:
    with within(5, "counting"):
        assert sum(range(10)) == 45
    with pytest.raises(InputError, match="counting took more than 0 s"), within(0.05, "counting"):
        python_loop(Run())


def test_a_run_replaces_a_pages_last_one() -> None:
    runs = Runs("test run")
    reached = threading.Event()

    def waiting(run: Run) -> None:
        reached.set()
        while True:
            time.sleep(0.01)
            run.check()

    first = runs.start(waiting)
    reached.wait(5)
    second = runs.start(lambda run: "two", replaces=first.id)
    assert ended(first).status == "cancelled" and ended(second).result == "two"
    for garbage in (None, ["x"], "nope", first.id):  # nothing (more) to cancel
        assert ended(runs.start(lambda run: 3, replaces=garbage)).result == 3
