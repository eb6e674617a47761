"""The circuits page: its table and figures hold the numbers `workbench jobs list|show` and
`workbench discover --json` print; a job launched from the page runs in a worker process and
finishes with the CLI's circuit; cancel leaves the store consistent and resume finishes with an
uninterrupted run's circuit; the graph of compiled `reverse` at its job's threshold is the
compiler's ground truth; bad input is a message; every callback answers garbage."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import dash
import pytest
from typer.testing import CliRunner

import workbench
import workbench.html
from app import launch
from app.figures.circuits import circuit_graph
from app.jobs import table_rows
from app.main import create_app
from app.pages.circuits import chosen, circuit_view, clicked_head, slider_range
from circuits.circuit import Circuit
from circuits.evaluation import roc
from circuits.graph import build_graph
from tests.app.helpers import GARBAGE, answer_garbage, serving
from workbench.cli import cli
from workbench.errors import InputError
from workbench.store import JobStore

runner = CliRunner()
EAP = ["--model", "induction-2l", "--method", "eap", "--top-k", "5", "--n-prompts", "2"]


def invoke(*args: str) -> dict | list:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:  # a progress note before the JSON line
        return json.loads(result.stdout.strip().splitlines()[-1])


def drawn(figure) -> set[str]:
    """The edges a circuit graph draws (the names its edge markers carry)."""
    (labels,) = [t for t in figure.data if t.name == "edges"]
    return set(labels.customdata or ())


@pytest.fixture
def app(tmp_path: Path):
    made = create_app(store=tmp_path / "jobs.sqlite")
    yield made
    made.context.workers.close()


def test_the_table_and_figures_hold_the_clis_numbers(tmp_path: Path, app) -> None:
    store = str(tmp_path / "jobs.sqlite")
    report = invoke("discover", *EAP, "--store", store, "--json")
    job = report["job"]
    shown = invoke("jobs", "show", job, "--store", store)
    (listed,) = invoke("jobs", "list", "--json", "--store", store)
    rows, notes = table_rows(app.context)
    (row,) = rows
    assert notes == [] and row.id == job == listed["id"]
    assert (row.status, row.done, row.total) == (listed["status"], shown["done"], shown["total"])
    assert (row.model, row.method, row.threshold) == ("induction-2l", "eap", "top 5")
    assert row.edges == f"5 of {shown['total']}"
    graph, histogram, faithful, ground, message = circuit_view(app.context, job, None)
    assert drawn(graph) == set(report["edges"]) and "done" in message
    positive = [s for s in report["scores"].values() if s > 0]
    assert sorted(histogram.data[0].x) == pytest.approx(sorted(map(math.log10, positive)))
    curve = sorted(shown["curves"]["faithfulness"])  # [edges kept, metric]
    ablated, full = curve[0][1], curve[-1][1]
    assert list(faithful.data[0].x) == [k for k, _ in curve]
    expected = [(m - ablated) / (full - ablated) for _, m in curve]
    assert list(faithful.data[0].y) == pytest.approx(expected)
    assert curve[-1][0] == shown["total"] and 5 in faithful.data[0].x  # the circuit's size
    assert "compiled RASP" in ground.layout.annotations[0].text  # no ground truth here
    # the slider: below the job's threshold, every edge scoring at least the slider's
    low, _, own = slider_range(*chosen(app.context, job))
    assert own == pytest.approx(math.log10(sorted(positive)[-5]))
    at = math.log10(sorted(positive)[-12])
    graph = circuit_view(app.context, job, at)[0]
    assert drawn(graph) == {e for e, s in report["scores"].items() if s >= 10**at}
    assert len(drawn(graph)) == 12
    assert drawn(circuit_view(app.context, job, low)[0]) == set(report["scores"])  # 0: all


def test_a_running_job_shows_the_edges_it_has_scored_so_far(app) -> None:
    from circuits import jobs

    store = JobStore(app.context.store)
    settings = jobs.Settings("induction-2l", "acdc", threshold=0.05, n_prompts=2)
    job = store.create(jobs.KIND, vars(settings), {})
    graph, _, faithful, _, message = circuit_view(app.context, job, None)
    assert "has scored no edge yet" in graph.layout.annotations[0].text
    assert message == f"job {job} is running: 0/0 edges scored so far"
    scores = {"a1.h3->logits": 0.5, "a1.h2->logits": 0.01, "a0.h2->a1.h3.k": 0.07}
    store.checkpoint(job, scores=scores, done=3, total=81)
    graph, histogram, faithful, _, message = circuit_view(app.context, job, None)
    assert drawn(graph) == {"a1.h3->logits", "a0.h2->a1.h3.k"}  # >= the job's threshold
    assert "3/81 edges scored so far; the graph shows those scoring ≥ 0.05" in message
    assert len(histogram.data[0].x) == 3
    assert "when the job is done" in faithful.layout.annotations[0].text
    assert drawn(circuit_view(app.context, job, 1e308)[0]) == set()  # far right: none
    assert table_rows(app.context)[0][0].status == "running"


def test_html_writes_the_pages_circuit_graph(tmp_path: Path, monkeypatch) -> None:
    point = EntryPoint("circuit", "app.figures.circuits:circuit_graph", workbench.html.GROUP)
    monkeypatch.setattr(workbench.html, "entry_points", lambda group: [point])
    store = str(tmp_path / "jobs.sqlite")
    out = tmp_path / "circuit.html"
    report = invoke("discover", *EAP, "--store", store, "--json", "--html", str(out))
    circuit = Circuit("eap", tuple(report["edges"]), report["scores"], report["metric"])
    figure = circuit_graph(circuit)
    page = out.read_text()
    assert page.lower().startswith("<!doctype html>") and figure.layout.title.text in page
    assert drawn(figure) == set(report["edges"])
    for edge in report["edges"]:  # the figure's JSON, with '>' escaped inside <script>
        assert json.dumps(edge).replace(">", "\\u003e") in page
    again = tmp_path / "show.html"
    show = ["jobs", "show", report["job"], "--store", store, "--html", str(again)]
    assert runner.invoke(cli, show).exit_code == 0
    assert again.read_text().count("\\u003e") == page.count("\\u003e")  # the same edges
    sweep = runner.invoke(
        cli, ["discover", *EAP, "--top-k", "3", "--store", store, "--html", str(out)]
    )
    assert sweep.exit_code == 2 and "drop it for a sweep" in sweep.output
    JobStore(store).create("discover", {"method": "eap"}, {})
    running = JobStore(store, readonly=True).list()[-1].id
    result = runner.invoke(cli, ["jobs", "show", running, "--store", store, "--html", str(again)])
    assert result.exit_code == 2 and "not done: no circuit to draw yet" in result.output


def wait_for(predicate, timeout: float = 120.0, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if found := predicate():
            return found
        time.sleep(step)
    raise AssertionError("timed out")


def test_a_job_launched_from_the_page_finishes_with_the_clis_circuit(tmp_path: Path, app) -> None:
    form = dict(launch.DEFAULTS, method="eap", top_k=5, n_prompts=2, threshold=None)
    key = launch.launch(app.context, "induction-2l", form)
    (worker,) = app.context.workers.workers()
    assert worker.key == key and worker.process.pid != threading.get_native_id()
    assert worker.wait(120) and worker.returncode == 0 and worker.error is None
    rows, _ = table_rows(app.context)
    assert [r.status for r in rows] == ["done"] and worker.job == rows[0].id
    job = JobStore(app.context.store).get(worker.job)
    assert job.settings["model"] == app.registry.get("induction-2l").source  # a server path
    report = invoke("discover", *EAP, "--store", str(tmp_path / "cli.sqlite"), "--json")
    assert job.result["edges"] == report["edges"]
    assert job.result["scores"] == pytest.approx(report["scores"])


SLOW_ACDC = ["--model", "induction-2l", "--method", "acdc", "--threshold", "0.05"]
SLOW_ACDC += ["--n-prompts", "128", "--batch-size", "1"]


def test_cancel_keeps_the_store_consistent_and_resume_finishes_the_same_circuit(
    tmp_path: Path, app
) -> None:
    context = app.context
    form = dict(launch.DEFAULTS, method="acdc", threshold=0.05, n_prompts=128, batch_size=1)
    launch.launch(context, "induction-2l", form)
    (worker,) = context.workers.workers()

    def started() -> str | None:
        rows, _ = table_rows(context)
        return rows[0].id if rows[0].status == "running" and rows[0].done >= 3 else None

    job_id = wait_for(started)
    assert "cancelling" in launch.cancel(context, job_id)
    store = JobStore(context.store)
    wait_for(lambda: store.get(job_id).status == "interrupted", 60)
    stopped = store.get(job_id)
    assert stopped.status == "interrupted" and stopped.error is None  # resumable at once
    assert stopped.lease_until <= time.time() and 3 <= stopped.done < stopped.total
    saved = store.state(job_id)["scores"]
    assert store.scores(job_id) == pytest.approx(saved)  # each checkpoint one transaction
    assert table_rows(context)[0][0].status == "interrupted (cancelled here)"
    launch.resume(context, job_id)  # at once: the cancelled worker has let the job go
    assert worker.wait(60) and worker.returncode == 130  # the CLI's Ctrl-C
    resumed = context.workers.of_job(job_id)
    assert resumed is not worker and resumed.wait(120) and resumed.returncode == 0
    whole = invoke(*(["discover", *SLOW_ACDC]), "--store", str(tmp_path / "whole.sqlite"), "--json")
    done = store.get(job_id)
    assert done.status == "done" and done.result["edges"] == whole["edges"]
    for edge, value in saved.items():  # the work done before the cancel was kept
        assert done.result["scores"][edge] == pytest.approx(value)
    with pytest.raises(InputError, match="already done"):
        launch.resume(context, job_id)
    with pytest.raises(InputError, match="not running here: there is nothing to cancel"):
        launch.cancel(context, job_id)


def test_compiled_reverse_at_its_threshold_is_the_ground_truth(tmp_path: Path) -> None:
    from rasp import library, rasp
    from rasp.compiler.compiler import compile_rasp

    compiled = compile_rasp(
        library.make_reverse(rasp.tokens), {"a", "b", "c"}, 5, validation_budget=20
    )
    directory = compiled.save(tmp_path / "reverse")
    store = str(tmp_path / "jobs.sqlite")
    app = create_app([str(directory)], store=store)
    report = invoke(
        "discover", "--model", str(directory), "--method", "acdc", "--threshold", "0.001",
        "--n-prompts", "6", "--store", store, "--json",
    )  # fmt: skip
    graph, _, _, ground, _ = circuit_view(app.context, report["job"], None)
    truth = set(compiled.ground_truth.edges)
    assert drawn(graph) == truth == set(report["edges"])
    circuit = Circuit("acdc", tuple(report["edges"]), report["scores"], "kl")
    expected = roc(circuit, truth, build_graph(compiled.model.config))
    assert expected.auc == 1.0 and f"AUC {expected.auc:.3f}" in ground.layout.title.text
    assert list(ground.data[0].x) == list(expected.fpr)
    assert list(ground.data[0].y) == list(expected.tpr)
    assert table_rows(app.context)[0][0].model == "reverse"
    click = {"points": [{"customdata": "a0.h0.q"}]}
    names = app.context.registry.names
    pending = {"model": "reverse", "click": {"points": [{"x": "H0", "y": "L0"}]}}
    assert clicked_head(app.context, report["job"], click, "induction-2l") == (
        "attention", "attention", names, "reverse", dash.no_update, pending
    )  # another model: the click waits for its heads  # fmt: skip
    assert clicked_head(app.context, report["job"], click, "reverse")[4] == pending["click"]


BAD_FORMS = [
    ({"method": "magic"}, "the method must be one of: acdc, eap, eap-ig; got 'magic'"),
    ({"method": ["acdc"]}, "the method must be one of: acdc, eap, eap-ig; got ['acdc']"),
    ({"threshold": -1}, "the threshold must be a number >= 0, got -1"),
    ({"threshold": float("nan")}, "the threshold must be a number >= 0, got nan"),
    ({"threshold": "0.1"}, "the threshold must be a number >= 0, got '0.1'"),
    ({"threshold": True}, "the threshold must be a number >= 0, got True"),
    ({"threshold": None}, "acdc needs a threshold"),
    ({"method": "eap", "threshold": None, "top_k": None}, "eap needs a top-k or a threshold"),
    ({"method": "eap", "top_k": 0}, "the top-k must be a whole number from 1 to"),
    (
        {"method": "eap", "top_k": 2.5},
        "the top-k must be a whole number from 1 to 1000000, got 2.5",
    ),
    ({"n_prompts": 0}, "the number of prompts must be a whole number from 1 to 4096, got 0"),
    ({"n_prompts": 10**9}, "the number of prompts must be a whole number from 1 to 4096"),
    ({"seed": -1}, "the seed must be a whole number from 0 to 4294967295, got -1"),
    ({"steps": 1e999}, "the number of EAP-IG steps must be a whole number from 1 to 100, got inf"),
    ({"task": "nosuch"}, "the task must be one of: the model's own, induction"),
    (
        {"ablation": "noise"},
        "the ablation must be one of: default, patch, zero, mean, resample; got 'noise'",
    ),
    ({"metric": {"a": 1}}, "the metric must be one of: kl, logit_diff; got {'a': 1}"),
    ({"ig_over": None}, "the EAP-IG over setting must be one of: inputs, activations; got None"),
]


@pytest.mark.parametrize(("change", "message"), BAD_FORMS, ids=[m for _, m in BAD_FORMS])
def test_a_bad_form_is_a_message_and_starts_nothing(app, change, message) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        launch.launch(app.context, "induction-2l", {**launch.DEFAULTS, **change})
    assert app.context.workers.workers() == [] and not app.context.store.exists()


@pytest.mark.parametrize("model", ["/etc/passwd", "../workbench/builtin/induction-2l", None, 3])
def test_a_model_is_one_the_server_offers_never_a_path(app, model) -> None:
    with pytest.raises(InputError, match="unknown model"):
        launch.launch(app.context, model, dict(launch.DEFAULTS))
    assert app.context.workers.workers() == []


def test_bad_job_ids_and_a_failing_worker_are_messages_without_server_paths(app) -> None:
    for action in (launch.cancel, launch.resume):
        for job_id, message in [(None, "no job is chosen"), ("nope", "no job 'nope'")]:
            with pytest.raises(InputError, match=message):
                action(app.context, job_id)
        with pytest.raises(InputError, match=r"no job \['x'\]"):
            action(app.context, ["x"])
    # checked only once the model is loaded: the worker fails before the job exists
    form = {**launch.DEFAULTS, "method": "eap-ig", "top_k": 3, "ablation": "zero"}
    launch.launch(app.context, "induction-2l", form)
    (worker,) = app.context.workers.workers()
    assert worker.wait(120) and worker.returncode == 2
    rows, notes = table_rows(app.context)
    assert rows == [] and len(notes) == 1
    assert "eap-ig on induction-2l failed before it started: eap-ig over the inputs" in notes[0]
    assert str(Path(workbench.__file__).parents[1]) not in notes[0]
    assert sys.prefix not in notes[0]


def test_at_most_a_few_workers_run_at_once(app, monkeypatch) -> None:
    monkeypatch.setattr(app.context.workers, "limit", 1)
    form = dict(launch.DEFAULTS, method="acdc", threshold=0.05, n_prompts=2)
    launch.launch(app.context, "induction-2l", form)
    with pytest.raises(InputError, match=r"1 jobs are running from this dashboard \(at most 1\)"):
        launch.launch(app.context, "induction-2l", form)


def test_app_store_option_and_a_store_that_is_a_directory(tmp_path: Path, monkeypatch) -> None:
    import waitress

    import app.main

    made: list[dict] = []
    real = app.main.create_app
    monkeypatch.setattr(waitress, "serve", lambda *a, **k: None)
    monkeypatch.setattr(app.main, "create_app", lambda *a, **k: made.append(k) or real(*a, **k))
    result = runner.invoke(cli, ["app", "--store", str(tmp_path / "runs" / "j.sqlite")])
    assert result.exit_code == 0, result.output
    assert made[-1]["store"] == tmp_path / "runs" / "j.sqlite"
    assert not (tmp_path / "runs").exists()  # made by the first job, not by the server
    result = runner.invoke(cli, ["app"])
    assert made[-1]["store"] == Path("runs") / "jobs.sqlite"  # workbench discover's
    result = runner.invoke(cli, ["app", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output


def test_every_circuits_callback_answers_garbage_on_its_page(tmp_path: Path) -> None:
    """The page shown, every other input and state of every callback garbage: an answer
    (200) or no update (204), never a 500; nothing launched, no store made."""
    made = create_app(store=tmp_path / "jobs.sqlite")
    ours = [
        key
        for key, callback in made.callback_map.items()
        if any(
            d["id"].startswith(("circuits", "links"))
            for d in [*callback["inputs"], *callback["state"]]
        )
    ]
    with serving(made, threads=4) as url:
        for garbage in GARBAGE:
            answer_garbage(
                url, ours, garbage, "circuits", each_input=True, callbacks=made.callback_map
            )
    assert made.context.workers.workers() == [] and not (tmp_path / "jobs.sqlite").exists()
