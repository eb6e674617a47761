"""Discovery jobs: the SQLite job store, `workbench discover` (resuming after SIGKILL with no
finished work lost), `workbench jobs list | show | export`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from circuits.discovery import node_scores
from circuits.graph import build_graph
from rasp import library, rasp
from rasp.compiler.compiler import compile_rasp
from workbench.cli import cli
from workbench.errors import InputError
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
    from circuits.discovery import Circuit

    circuit = Circuit("acdc", tuple(report["edges"]), report["scores"], "kl")
    heads = {k: v for k, v in node_scores(circuit, graph).items() if ".h" in k}
    assert set(sorted(heads, key=lambda h: -heads[h])[:2]) == {"a1.h3", "a0.h2"}
    for method in ("eap", "eap-ig"):
        out = invoke(
            "discover", "--model", "induction-2l", "--method", method, "--top-k", "10",
            "--n-prompts", "8", "--store", store, "--json",
        )  # fmt: skip
        assert "a1.h3->logits" in json.loads(out.stdout.strip().splitlines()[-1])["edges"]


def test_bad_discovery_input_fails_clearly(tmp_path) -> None:
    store = str(tmp_path / "jobs.sqlite")
    cases = [
        (["--model", "induction-2l", "--method", "magic"], "unknown method"),
        (["--model", "induction-2l", "--method", "acdc"], "needs --threshold"),
        (["--model", "induction-2l", "--method", "eap"], "--top-k"),
        (["--model", "induction-2l", "--method", "acdc", "--threshold", "1", "--n-prompts", "0"],
         "at least 1"),
        (["--resume", "nope"], "no job"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(cli, ["discover", *args, "--store", store])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    export = runner.invoke(cli, ["jobs", "export", "nope", "--store", store])
    assert export.exit_code == 2


@pytest.mark.timeout(300)
def test_a_killed_job_resumes_and_loses_no_finished_work(tmp_path) -> None:
    """SIGKILL `workbench discover` mid-run, resume it, and get the uninterrupted answer."""
    store = tmp_path / "jobs.sqlite"
    args = ["--model", "induction-2l", "--method", "acdc", "--threshold", "0.05"]
    args += ["--n-prompts", "64", "--batch-size", "1", "--json"]
    whole = invoke("discover", *args, "--store", str(tmp_path / "whole.sqlite"))
    expected = json.loads(whole.stdout.strip().splitlines()[-1])
    command = [sys.executable, "-m", "workbench.cli", "discover", *args, "--store", str(store)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    seen = 0
    while time.time() < deadline and process.poll() is None:
        if store.exists():
            jobs = JobStore(store).list()
            seen = jobs[0].done if jobs else 0
            if seen >= 10:
                os.kill(process.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    job = JobStore(store).list()[0]
    assert job.status == "running" and job.done >= 10
    saved = JobStore(store).state(job.id)
    assert len(saved["scores"]) >= 10
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
