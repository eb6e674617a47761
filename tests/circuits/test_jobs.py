"""Discovery jobs: the SQLite job store, `workbench discover` (resuming after SIGKILL with no
finished work lost, leases that keep two processes off one job, bad input that leaves the
store as it was), `workbench jobs list | show | export`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from xml.etree import ElementTree as ET

import pytest
import torch
from typer.testing import CliRunner

from circuits import jobs
from circuits.circuit import node_scores
from circuits.graph import build_graph
from rasp import library, rasp
from rasp.compiler.compiler import compile_rasp
from workbench.cli import cli
from workbench.errors import InputError, JobLeaseError
from workbench.store import JobStore

runner = CliRunner()


def test_store_round_trip_and_rollback(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("discover", {"method": "acdc"}, {"torch": "x"})
    store.checkpoint(job, state={"removed": ["a"]}, scores={"e1": 0.5}, done=1, total=3)
    store.checkpoint(job, scores={"e2": 0.25}, curve=("distance", 1, 1.0, 0.1), done=2)
    assert store.state(job) == {"removed": ["a"]}
    assert store.scores(job) == {"e1": 0.5, "e2": 0.25}
    assert store.curves(job) == {"distance": [(1.0, 0.1)]}
    with pytest.raises(RuntimeError), store._transaction() as db:
        db.execute("UPDATE jobs SET done = 99 WHERE id = ?", (job,))
        raise RuntimeError("killed mid-write")
    assert store.get(job).done == 2  # the failed write left nothing behind
    store.finish(job, {"edges": ["e1"]})
    assert store.get(job).status == "done" and store.get(job).result == {"edges": ["e1"]}
    with pytest.raises(InputError, match="no job 'nope'.*" + job):
        store.get("nope")


def invoke(*args: str):
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_discover_on_a_compiled_program_and_export(tmp_path) -> None:
    compiled = compile_rasp(library.make_reverse(rasp.tokens), {"a", "b", "c"}, 5)
    compiled.save(tmp_path / "rev")
    store = str(tmp_path / "jobs.sqlite")
    out = invoke(
        "discover", "--model", str(tmp_path / "rev"), "--method", "acdc", "--threshold",
        "0.001", "--n-prompts", "6", "--store", store, "--json",
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(report["edges"]) == set(compiled.ground_truth.edges)
    job = report["job"]
    listed = json.loads(invoke("jobs", "list", "--store", store, "--json").stdout)
    assert [j["id"] for j in listed] == [job] and listed[0]["status"] == "done"
    shown = json.loads(invoke("jobs", "show", job, "--store", store).stdout)
    assert shown["status"] == "done" and shown["done"] == shown["total"] > 0
    assert shown["versions"]["torch"] and shown["curves"]["distance"]
    faithful = shown["curves"]["faithfulness"]
    assert faithful[-1][0] == shown["total"]  # every edge kept: the full model
    dot = invoke("jobs", "export", job, "--format", "dot", "--store", store).stdout
    assert '"a3.h0" -> "logits"' in dot
    graphml = invoke("jobs", "export", job, "--format", "graphml", "--store", store).stdout
    root = ET.fromstring(graphml.split("\n", 1)[1])
    assert len(root.findall(".//{http://graphml.graphdrawing.org/xmlns}edge")) == len(
        report["edges"]
    )


def test_discover_finds_the_induction_heads(tmp_path) -> None:
    """On the shipped induction model, ACDC's circuit runs through the previous-token head
    (0, 2) into the induction head (1, 3)'s keys, the heads `probes.heads` identifies."""
    store = str(tmp_path / "jobs.sqlite")
    out = invoke(
        "discover", "--model", "induction-2l", "--method", "acdc", "--threshold", "0.05",
        "--n-prompts", "8", "--store", store, "--json",
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"a0.h2->a1.h3.k", "a1.h3->logits"} <= set(report["edges"])
    import workbench

    graph = build_graph(workbench.load("induction-2l").config)
    from circuits.circuit import Circuit

    circuit = Circuit("acdc", tuple(report["edges"]), report["scores"], "kl")
    heads = {k: v for k, v in node_scores(circuit, graph).items() if ".h" in k}
    assert set(sorted(heads, key=lambda h: -heads[h])[:2]) == {"a1.h3", "a0.h2"}
    for method in ("eap", "eap-ig"):
        out = invoke(
            "discover", "--model", "induction-2l", "--method", method, "--top-k", "10",
            "--n-prompts", "8", "--store", store, "--json",
        )  # fmt: skip
        assert "a1.h3->logits" in json.loads(out.stdout.strip().splitlines()[-1])["edges"]


INDUCTION = ["--model", "induction-2l", "--n-prompts", "2"]
ACDC = [*INDUCTION, "--method", "acdc", "--threshold", "0.05"]
EAP = [*INDUCTION, "--method", "eap", "--top-k", "3"]
BAD_INPUT = [
    (["--model", "nope-2l", "--method", "acdc", "--threshold", "1"], "unknown built-in model"),
    ([*ACDC, "--task", "nosuch"], "unknown task 'nosuch'"),
    ([*ACDC, "--task", "sort"], "pick the task the model was trained on"),
    ([*ACDC, "--ablation", "noise"], "unknown ablation 'noise'"),
    ([*ACDC, "--device", "tpu"], "unknown device 'tpu'"),
    ([*INDUCTION, "--method", "magic"], "unknown method"),
    (["--n-prompts", "2"], "pass --model (or --resume ID)"),
    ([*ACDC, "--metric", "acc"], "--metric must be kl or logit_diff"),
    ([*INDUCTION, "--method", "acdc"], "needs --threshold"),
    ([*INDUCTION, "--method", "eap"], "--top-k"),
    ([*INDUCTION, "--method", "acdc", "--threshold", "nan"], "--threshold must be a finite"),
    ([*INDUCTION, "--method", "acdc", "--threshold", "inf"], "--threshold must be a finite"),
    ([*INDUCTION, "--method", "acdc", "--threshold", "-1"], "--threshold must be a finite"),
    ([*INDUCTION, "--method", "eap", "--top-k", "-3"], "--top-k must be a number of edges >= 1"),
    ([*INDUCTION, "--method", "eap", "--top-k", "0"], "--top-k must be a number of edges >= 1"),
    ([*ACDC, "--n-prompts", "0"], "--n-prompts must be at least 1, got 0"),
    ([*ACDC, "--n-prompts", "-4"], "--n-prompts must be at least 1, got -4"),
    ([*ACDC, "--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    ([*ACDC, "--seed", str(2**32)], "--seed must be an integer in [0, 4294967295]"),
    ([*ACDC, "--batch-size", "0"], "--batch-size must be at least 1"),
    ([*EAP, "--method", "eap-ig", "--steps", "0"], "--steps must be at least 1"),
    ([*EAP, "--method", "eap-ig", "--ig-over", "x"], "--ig-over must be inputs or activations"),
    ([*EAP, "--method", "eap-ig", "--ablation", "zero"], "needs --ablation patch (here zero)"),
    ([*ACDC, "--lease", "0"], "--lease must be a number of seconds >= 1"),
    ([*ACDC, "--lease", "nan"], "--lease must be a number of seconds >= 1"),
    ([*ACDC, "--steal"], "--steal takes over a running job: use it with --resume"),
    ([*ACDC, "--address", "ray://x:1"], "--address is the Ray cluster of --backend ray"),
    ([*EAP, "--model", "nope-2l"], "unknown built-in model"),  # a sweep: nothing created
    ([*EAP, "--backend", "ray", "--device", "tpu"], "unknown device 'tpu'"),
    ([*EAP, "--model", "runs/nowhere"], "does not exist"),
]  # fmt: skip
if not torch.cuda.is_available():
    BAD_INPUT.append(([*ACDC, "--device", "cuda"], "CUDA is not available"))


def one_line_error(result, message: str) -> None:
    """Exit status 2 and one line that says `message`."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_discovery_input_creates_no_job(tmp_path, args, message) -> None:
    """Every input error is raised before a job row exists: an existing store keeps its
    jobs as they were, and a new store path stays uncreated."""
    store = tmp_path / "jobs.sqlite"
    existing = JobStore(store)
    existing.finish(existing.create("discover", {"method": "acdc"}, {}), {"edges": []})
    before = JobStore(store, readonly=True).list()
    one_line_error(runner.invoke(cli, ["discover", *args, "--store", str(store)]), message)
    assert JobStore(store, readonly=True).list() == before
    fresh = tmp_path / "new" / "jobs.sqlite"
    one_line_error(runner.invoke(cli, ["discover", *args, "--store", str(fresh)]), message)
    assert not fresh.parent.exists()


def test_bad_resumes_fail_clearly(tmp_path) -> None:
    store = tmp_path / "jobs.sqlite"
    the_store = JobStore(store)
    job = the_store.create("discover", {"model": "induction-2l", "method": "eap"}, {})
    the_store.finish(job, {"edges": []})
    cases = [
        ([job], "already done"),
        ([job, "--model", "induction-2l"], "--resume runs the job with its own settings"),
        (["nope"], f"no job 'nope' in {store}; jobs in {store}: {job}"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["discover", "--resume", *args, "--store", str(store)])
        one_line_error(result, message)
    missing = tmp_path / "new" / "jobs.sqlite"
    result = runner.invoke(cli, ["discover", "--resume", job, "--store", str(missing)])
    one_line_error(result, "no job store at")
    assert not missing.parent.exists()
    one_line_error(runner.invoke(cli, ["jobs", "export", "nope", "--store", str(store)]), "no job")


def test_resume_refuses_a_live_job_and_steal_takes_it_over(tmp_path) -> None:
    """A job whose owner's lease is live is refused with what to do; --steal takes it, and
    the old owner then stops at its next write."""
    store = tmp_path / "jobs.sqlite"
    settings = jobs.Settings("induction-2l", "eap", top_k=3, n_prompts=2)
    holder = JobStore(store)
    job = holder.create(jobs.KIND, vars(settings), {})
    resume = ["discover", "--resume", job, "--store", str(store), "--json"]
    one_line_error(runner.invoke(cli, resume), f"job {job} is running in process {os.getpid()}")
    assert "--steal" in runner.invoke(cli, resume).output
    assert JobStore(store).get(job).owner == holder.owner  # refused: nothing changed
    stolen = invoke(*resume, "--steal")
    assert len(json.loads(stolen.stdout.strip().splitlines()[-1])["edges"]) == 3
    assert JobStore(store).get(job).status == "done"
    with pytest.raises(JobLeaseError, match="taken over"):
        holder.checkpoint(job, done=1)


def test_ctrl_c_ends_the_lease_so_the_job_resumes_at_once(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    settings = jobs.Settings("induction-2l", "acdc", threshold=0.05, n_prompts=2)
    job = store.create(jobs.KIND, vars(settings), {})

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        jobs.run(store, job, settings, on_progress=interrupt)
    stopped = JobStore(store.path).get(job)
    assert stopped.status == "interrupted" and stopped.error is None and stopped.done >= 1
    resumed = invoke("discover", "--resume", job, "--store", str(store.path), "--json")
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["job"] == job


@pytest.mark.timeout(300)
def test_a_killed_job_resumes_and_loses_no_finished_work(tmp_path) -> None:
    """SIGKILL `workbench discover` mid-run, resume it, and get the uninterrupted answer."""
    store = tmp_path / "jobs.sqlite"
    args = ["--model", "induction-2l", "--method", "acdc", "--threshold", "0.05"]
    args += ["--n-prompts", "64", "--batch-size", "1", "--json"]
    whole = invoke("discover", *args, "--store", str(tmp_path / "whole.sqlite"))
    expected = json.loads(whole.stdout.strip().splitlines()[-1])
    command = [sys.executable, "-m", "workbench.cli", "discover", *args, "--store", str(store)]
    command += ["--lease", "1"]  # a short lease: the killed job is resumable a second later
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    seen = 0
    while time.time() < deadline and process.poll() is None:
        if store.exists():
            try:
                listed = JobStore(store, readonly=True).list()
            except InputError:  # the file exists but the process is still making the store
                listed = []
            seen = listed[0].done if listed else 0
            if seen >= 10:
                os.kill(process.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    job = JobStore(store).list()[0]
    assert job.done >= 10
    saved = JobStore(store).state(job.id)
    assert len(saved["scores"]) >= 10
    while JobStore(store).get(job.id).status == "running":  # until its lease expires
        assert time.time() < deadline + 60, "the killed job's lease never expired"
        time.sleep(0.05)
    listed = invoke("jobs", "list", "--store", str(store)).stdout
    assert "interrupted" in listed and "--resume" in listed
    resumed = invoke("discover", "--resume", job.id, "--store", str(store), "--json")
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["edges"] == expected["edges"]
    for edge, score in saved["scores"].items():  # finished work kept as it was
        assert report["scores"][edge] == pytest.approx(score)
    assert JobStore(store).get(job.id).status == "done"


def test_a_sweep_runs_every_combination_here_and_on_ray(tmp_path) -> None:
    """methods x cut-offs: one job each, in the same store, run locally and on a local Ray
    cluster, with the same circuits."""
    pytest.importorskip("ray")
    common = ["--model", "induction-2l", "--method", "acdc", "--method", "eap"]
    common += ["--threshold", "0.05", "--top-k", "5", "--top-k", "10", "--n-prompts", "8"]
    results = {}
    for backend in ("local", "ray"):
        store = str(tmp_path / f"{backend}.sqlite")
        out = invoke("discover", *common, "--backend", backend, "--store", store, "--json")
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        jobs = {j.id: j for j in JobStore(store).list()}
        assert len(rows) == 3 and all(jobs[r["job"]].status == "done" for r in rows)
        results[backend] = sorted(
            (
                jobs[r["job"]].settings["method"],
                r["edges_kept"],
                tuple(jobs[r["job"]].result["edges"]),
            )
            for r in rows
        )
    assert results["local"] == results["ray"]
    assert [kept for _, kept, _ in results["local"]] == [5, 5, 10]


@pytest.mark.parametrize(
    ("preset", "args", "message"),
    [
        ("vaswani-base-tiny", ["--ig-over", "activations"], "post-norm"),
        ("denseformer-small-tiny", [], "edge patching is not defined for this model"),
    ],
)
def test_what_a_model_cannot_run_fails_before_the_job_exists(tmp_path, preset, args, message):
    """Checks that need the model (its graph, its stream) run before the job row exists."""
    import workbench
    from workbench.checkpoint import save
    from workbench.presets import get_preset
    from workbench.tasks import make_task

    task = make_task("induction")
    config = get_preset(preset).config
    model = workbench.build(config.replace(**task.model_overrides(config)))
    save(model, tmp_path / "model", {"task": task.spec()})
    store = tmp_path / "jobs.sqlite"
    args = ["--model", str(tmp_path / "model"), "--method", "eap-ig", "--top-k", "3", *args]
    result = runner.invoke(cli, ["discover", *args, "--n-prompts", "2", "--store", str(store)])
    one_line_error(result, message)
    assert not store.exists()
