"""The patching page through a real waitress server, as a browser drives it: its heatmap holds
the numbers `workbench patch --json` prints for the same settings (task pairs and typed
prompts); the sweep runs in the background with progress and can be cancelled while the
server keeps answering; a clicked cell's patched run gives that cell's number; bad input is a
message."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import circuits.tasks
import workbench
import workbench.html
from app.background import Run
from app.figures.patching import cells, patch_heatmap, restored
from app.models import ModelRegistry
from app.patching import Settings, sweep
from tests.app.helpers import CALLBACKS, GARBAGE, answer_garbage, call, gate, poll_until_idle, z_of
from workbench.cli import cli

runner = CliRunner()
SETTINGS = {
    "page.value": "patching",
    "model.value": "induction-2l",
    "patching-start.n_clicks": 1,
    "patching-source.value": "task",
    "patching-n.value": 3,
    "patching-seed.value": 5,
    "patching-clean.value": "",
    "patching-corrupted.value": "",
    "patching-answer.value": "",
    "patching-wrong.value": "",
    "patching-site.value": "resid_pre",
    "patching-positions.value": "each",
    "patching-heads.value": "each",
    "patching-ablation.value": "patch",
    "patching-metric.value": "logit_diff",
}


def start(url: str, **changes) -> dict:
    values = {**SETTINGS, **{f"patching-{k}.value": v for k, v in changes.items()}}
    return call(url, "patching-run.data", values, "patching-start.n_clicks")


def poll(url: str, run_id: str) -> dict:
    values = {"page.value": "patching", "patching-run.data": run_id, "patching-poll.n_intervals": 1}
    return call(url, "patching-progress.children", values, "patching-poll.n_intervals")


def finish(url: str, run_id: str) -> dict:
    """Poll until the run ends; its last reply."""
    values = {"page.value": "patching", "patching-run.data": run_id}
    return poll_until_idle(url, "patching-progress.children", values, "patching-poll")


def run_page(url: str, **changes) -> dict:
    started = start(url, **changes)
    assert started["patching-error"]["children"] == "", started
    return finish(url, started["patching-run"]["data"])


def cli_json(*args: str) -> dict:
    result = runner.invoke(cli, ["patch", "--model", "induction-2l", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def laid_out(printed: dict) -> np.ndarray:
    """The CLI's scores as the page lays them out: positions across, else heads; layer (and
    head) down."""
    metric = printed["metric"]
    grid = np.array([row[metric] for row in printed["results"]]).reshape(printed["shape"])
    dims = printed["dims"]
    if dims == ["layer", "pos", "head"]:
        return grid.transpose(0, 2, 1).reshape(-1, grid.shape[1])  # row L{l}H{h}
    return grid.reshape(grid.shape[0], -1)


@pytest.mark.parametrize(
    ("site", "positions", "heads", "ablation", "metric", "dims"),
    [
        ("resid_pre", "each", "each", "patch", "logit_diff", ["layer", "pos"]),
        ("z", "all", "each", "resample", "prob", ["layer", "head"]),
        ("z", "each", "each", "zero", "kl", ["layer", "pos", "head"]),
        ("attn_out", "all", "all", "mean", "loss", ["layer"]),
    ],
)
def test_the_heatmap_holds_the_cli_json_numbers(
    server, site, positions, heads, ablation, metric, dims
) -> None:
    url, _ = server
    settings = {"site": site, "positions": positions, "heads": heads}
    settings |= {"ablation": ablation, "metric": metric}
    reply = run_page(url, **settings)
    assert reply["patching-error"]["children"] == ""
    assert reply["patching-progress"]["children"].startswith("done: ")
    figure = reply["patching-heatmap"]["figure"]
    args = [f"--{k}" if k != "n" else "--n-prompts" for k in settings]
    flags = [x for pair in zip(args, settings.values(), strict=True) for x in pair]
    printed = cli_json(*flags, "--n-prompts", "3", "--seed", "5")
    assert printed["dims"] == dims
    np.testing.assert_allclose(z_of(figure["data"][0]), laid_out(printed), atol=1e-5)
    assert f"{ablation} {site}: {metric}" in figure["layout"]["title"]["text"]


def test_typed_prompts_equal_the_cli_and_label_their_positions(server) -> None:
    url, _ = server
    clean, corrupted = "BOS t1 t2 t3 t4 t1 t2 t3", "BOS t5 t6 t7 t8 t1 t2 t3"
    reply = run_page(url, source="typed", clean=clean, corrupted=corrupted, n=None, seed=None)
    assert reply["patching-error"]["children"] == ""
    figure = reply["patching-heatmap"]["figure"]
    printed = cli_json("--site", "resid_pre", "--clean", clean, "--corrupted", corrupted)
    np.testing.assert_allclose(z_of(figure["data"][0]), laid_out(printed), atol=1e-5)
    ticks = figure["data"][0]["x"]
    assert ticks[0] == "0:BOS" and ticks[1] == "1:t1/t5" and ticks[5] == "5:t1"
    # the defaults: the clean prompt's top token is the answer, the corrupted's the wrong one
    ckpt = workbench.open_checkpoint("induction-2l")
    vocab = ckpt.vocab
    ids = [[vocab.index(w) for w in p.split()] for p in (clean, corrupted)]
    top = ckpt.model(torch.tensor(ids))[:, -1].argmax(-1).tolist()
    assert vocab[top[0]] == "t4"  # induction: the clean prompt repeats its first copy
    given = cli_json(
        "--site", "resid_pre", "--clean", clean, "--corrupted", corrupted,
        "--answer", "t4", "--wrong", vocab[top[1]],
    )  # fmt: skip
    assert given["results"] == printed["results"]
    other = run_page(
        url, source="typed", clean=clean, corrupted=corrupted, answer="t4", wrong="t9"
    )["patching-heatmap"]["figure"]
    printed = cli_json(
        "--site", "resid_pre", "--clean", clean, "--corrupted", corrupted,
        "--answer", "t4", "--wrong", "t9",
    )  # fmt: skip
    np.testing.assert_allclose(z_of(other["data"][0]), laid_out(printed), atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 0}, "number of prompt pairs must be a whole number from 1 to 256"),
        ({"n": 2.5}, "number of prompt pairs must be a whole number"),
        ({"n": None}, "number of prompt pairs must be a whole number"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295"),
        ({"site": "resid"}, "the site must be one of: resid_pre"),
        ({"site": ["z"]}, "the site must be one of"),
        (
            {"ablation": "noise"},
            "the ablation must be one of: patch, zero, mean, resample; got 'noise'",
        ),
        ({"metric": None}, "the metric must be one of: logit_diff"),
        ({"positions": "some"}, "the positions setting must be one of: each, all"),
        ({"source": "file"}, "the prompt source must be one of: task, typed"),
        ({"source": "typed", "clean": 5}, "the prompt must be text, got int"),
        ({"source": "typed", "answer": ["t1"]}, "the answer must be one token"),
    ],
)
def test_bad_settings_are_messages_before_any_run(server, changes, message) -> None:
    url, _ = server
    reply = start(url, **changes)
    assert message in reply["patching-error"]["children"]
    assert "patching-run" not in reply  # no run started


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"clean": "BOS t1 t2", "corrupted": "BOS t1"},
            "the clean prompt has 3 tokens and the corrupted one 2",
        ),
        ({"clean": "BOS t1 banana", "corrupted": "BOS t1 t2"}, "'banana' is not in this model"),
        ({"clean": "", "corrupted": "BOS t1"}, "the prompt is empty"),
        (
            {"clean": "BOS t1 t2", "corrupted": "BOS t1 t3", "ablation": "mean"},
            "ablation 'mean' averages or draws activations over a task's prompts",
        ),
        (
            {"clean": "BOS t1 t2", "corrupted": "BOS t1 t3", "answer": "t1", "wrong": "t1"},
            "the answer and the wrong token are both token",
        ),
        (
            {"clean": "BOS t1 t2", "corrupted": "BOS t1 t3", "answer": "nope"},
            "the answer 'nope' is not one token of this model",
        ),
    ],
)
def test_bad_prompts_are_messages_from_the_run(server, changes, message) -> None:
    url, _ = server
    reply = run_page(url, source="typed", **changes)
    assert message in reply["patching-error"]["children"]
    assert message in reply["patching-heatmap"]["figure"]["layout"]["annotations"][0]["text"]
    assert reply["patching-progress"]["children"] == "failed"


def test_a_model_without_a_task_asks_for_typed_prompts(tmp_path) -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    workbench.checkpoint.save(model, tmp_path / "tiny")
    registry = ModelRegistry.offering([str(tmp_path / "tiny")])

    def settings(**changes) -> Settings:
        given = {"model": "tiny", "source": "task", "n": 3, "seed": 5, "clean": "",
                 "corrupted": "", "answer": "", "wrong": "", "site": "resid_pre",
                 "positions": "each", "heads": "each", "ablation": "patch",
                 "metric": "logit_diff"}  # fmt: skip
        return Settings.of(registry, *(given | changes).values())

    with pytest.raises(workbench.errors.InputError, match="type a clean and a corrupted prompt"):
        sweep(registry, settings(), Run())
    typed = settings(
        source="typed", clean="1 2 3 4", corrupted="1 2 5 4", site="z", positions="all", metric="kl"
    )
    finished = sweep(registry, typed, Run())
    assert finished.result.dims == ("layer", "head") and finished.labels == ["1", "2", "3/5", "4"]
    assert finished.prompts == ["1 2 3 4"]  # for the attention view's input box


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch):
    """The sweep stops at its first progress report until released: a long run, on demand.
    The reports it made are recorded."""
    return gate(monkeypatch, circuits.tasks, "sweep_site")


def test_progress_shows_while_the_server_keeps_answering_and_cancel_stops_the_run(
    server, gated
) -> None:
    url, app = server
    reached, release, reports = gated
    run_id = start(url, n=4)["patching-run"]["data"]
    try:
        assert reached.wait(30)
        running = poll(url, run_id)
        assert running["patching-poll"]["disabled"] is False
        shown = running["patching-progress"]["children"]
        done, total = reports[0]
        assert f" {done} of {total} patches" in shown[1]  # the bar and its words
        bar = shown[0]["props"]
        assert (bar["value"], bar["max"]) == (str(done), str(total))
        with urllib.request.urlopen(url + "/", timeout=5) as page:  # a page load never waits
            assert page.status == 200
        values = {"page.value": "patching", "patching-run.data": run_id}
        values["patching-cancel.n_clicks"] = 1
        cancelling = call(url, "patching-error.children", values, "patching-cancel.n_clicks")
        assert cancelling["patching-progress"]["children"] == "cancelling..."
    finally:
        release.set()
    reply = finish(url, run_id)
    assert reply["patching-progress"]["children"].startswith(f"cancelled after {done} of {total}")
    assert reply["patching-heatmap"]["figure"]["data"] == []
    offered = app.registry.get("induction-2l")
    assert offered.lock.acquire(timeout=5)  # the cancelled run let go of the model
    offered.lock.release()


def test_a_new_sweep_from_the_page_cancels_its_last_one(server, gated) -> None:
    url, _ = server
    reached, release, _ = gated
    first = start(url)["patching-run"]["data"]
    try:
        assert reached.wait(30)
        values = {**SETTINGS, "patching-run.data": first}
        second = call(url, "patching-run.data", values, "patching-start.n_clicks")
    finally:
        release.set()
    assert finish(url, first)["patching-progress"]["children"].startswith("cancelled")
    done = finish(url, second["patching-run"]["data"])
    assert done["patching-progress"]["children"].startswith("done")


def test_a_finished_run_reports_every_patch(server, monkeypatch) -> None:
    url, _ = server
    reports: list[tuple[int, int]] = []
    real = circuits.tasks.sweep_site

    def recorded(*args, on_progress, **kwargs):
        def report(done, total):
            reports.append((done, total))
            on_progress(done, total)

        return real(*args, on_progress=report, memory_budget=400_000, **kwargs)

    monkeypatch.setattr(circuits.tasks, "sweep_site", recorded)
    reply = run_page(url, site="z", positions="each")
    total = 2 * 24 * 4
    assert reply["patching-progress"]["children"].startswith(f"done: {total} patches")
    assert len(reports) > 1 and reports[-1] == (total, total)  # several passes, all counted
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_a_clicked_cell_shows_its_patched_run_and_opens_its_head(server) -> None:
    url, _ = server
    run_id = start(url, site="z", positions="all", n=3)["patching-run"]["data"]
    figure = finish(url, run_id)["patching-heatmap"]["figure"]
    z = z_of(figure["data"][0])

    def click(x, y, prompt=0, data=None) -> dict:
        values = {
            "page.value": "patching",
            "patching-run.data": run_id,
            "patching-heatmap.clickData": data or {"points": [{"x": x, "y": y, "z": 0.0}]},
            "patching-prompt.value": prompt,
        }
        return call(url, "patching-topk.figure", values, "patching-heatmap.clickData")

    cell = click("H3", "L1", prompt=2)
    assert cell["patching-cell-error"]["children"] == ""
    topk = cell["patching-topk"]["figure"]
    assert [t["name"] for t in topk["data"]] == ["clean", "corrupted", "patched L1 H3"]
    title = topk["layout"]["title"]["text"]
    assert title.startswith("prompt 2: answer ")
    assert f"over all prompts: {z[1, 3]:.4g}" in title  # the patched run gives the cell's number
    for bars in topk["data"]:
        probs = np.asarray(bars["x"], dtype=float)
        assert len(probs) == 8 and np.all(np.diff(probs) <= 0) and probs.sum() <= 1 + 1e-6
    head = cell["patching-head"]["data"]
    assert head["layer"] == 1 and head["head"] == 3 and head["prompt"].startswith("BOS ")
    assert cell["patching-open"]["children"] == "open L1H3 in the attention view"
    values = {
        "page.value": "patching",
        "patching-open.n_clicks": 1,
        "patching-head.data": head,
        "model.value": "induction-2l",
    }
    opened = call(url, "page.value", values, "patching-open.n_clicks")
    assert opened["page"]["value"] == "attention" and opened["tabs"]["value"] == "attention"
    assert opened["overview"]["clickData"] == {"points": [{"x": "H3", "y": "L1"}]}
    assert opened["prompt"]["value"] == head["prompt"]
    # bad clicks, prompts and stores are messages
    assert "no such cell" in click("H4", "L1")["patching-cell-error"]["children"]
    assert "no such cell" in click(3, 1)["patching-cell-error"]["children"]
    assert (
        "could not read the clicked cell"
        in click(0, 0, data={"points": []})["patching-cell-error"]["children"]
    )
    assert (
        "prompt number must be a whole number from 0 to 2"
        in (click("H0", "L0", prompt=3)["patching-cell-error"]["children"])
    )
    bad = call(
        url,
        "page.value",
        {**values, "patching-head.data": {**head, "head": 9}},
        "patching-open.n_clicks",
    )
    assert "no head L1H9" in bad["patching-cell-error"]["children"]
    bad = call(
        url,
        "page.value",
        {**values, "patching-head.data": {**head, "model": "/etc"}},
        "patching-open.n_clicks",
    )
    assert "unknown model '/etc'" in bad["patching-cell-error"]["children"]


def test_unknown_runs_are_messages(server) -> None:
    url, _ = server
    for run_id in ("nope", 5, ["x"]):
        assert "run it again" in poll(url, run_id)["patching-error"]["children"]
    values = {"page.value": "patching", "patching-cancel.n_clicks": 1}
    reply = call(url, "patching-error.children", values, "patching-cancel.n_clicks")
    assert reply["patching-error"]["children"] == "nothing to cancel: no sweep has run on this page"


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_the_page_answers_garbage_while_shown(server, garbage) -> None:
    """Every patching callback with the page shown and every other value garbage."""
    url, _ = server
    answer_garbage(url, [k for k in CALLBACKS if "patching" in k], garbage, "patching")


def test_pause_lets_a_waiting_request_use_the_model() -> None:
    registry = ModelRegistry.offering()
    order: list[str] = []
    with registry.running("induction-2l"):

        def other() -> None:
            with registry.running("induction-2l"):
                order.append("other")

        waiting = threading.Thread(target=other)
        waiting.start()
        time.sleep(0.1)
        assert order == []  # it waits for the long run
        registry.pause("induction-2l")
        order.append("long run")
        waiting.join(timeout=5)
    assert order == ["other", "long run"]


def test_the_fraction_restored_and_the_html_figure(tmp_path, monkeypatch) -> None:
    ckpt = workbench.open_checkpoint("induction-2l")
    task = workbench.tasks.make_task(ckpt.meta["task"]["name"], **ckpt.meta["task"]["params"])
    result = circuits.tasks.patch_task(ckpt.model, task, "resid_pre", positions="all", n_prompts=3)
    fraction, meaning = restored(result)
    assert meaning == "of the effect restored"
    assert fraction[0] == pytest.approx(1.0, abs=1e-5)  # the whole stream: the clean run
    assert result.scores[0] == pytest.approx(result.source_baseline, abs=1e-4)
    figure = patch_heatmap(result)
    assert "1.000 of the effect restored" in figure.data[0].text[0][0]
    laid = cells(result)
    assert laid.rows == ["L0", "L1"] and laid.columns == ["all"]
    # workbench patch --html: the same figure, through the entry point pyproject declares
    point = EntryPoint("patch", "app.figures.patching:patch_heatmap", workbench.html.GROUP)
    monkeypatch.setattr(workbench.html, "entry_points", lambda group: [point])
    out = tmp_path / "patch.html"
    args = ["patch", "--model", "induction-2l", "--site", "resid_pre", "--positions", "all"]
    printed = runner.invoke(cli, [*args, "--n-prompts", "3", "--json", "--html", str(out)])
    assert printed.exit_code == 0, printed.output
    page = out.read_text()
    assert page.lower().startswith("<!doctype html>") and "of the effect restored" in page
    assert "patch resid_pre: logit_diff (corrupted" in page  # the figure's title
    expected = [row["logit_diff"] for row in json.loads(printed.output)["results"]]
    np.testing.assert_allclose(np.asarray(figure.data[0].z).ravel(), expected, atol=1e-5)
    ablated = circuits.tasks.patch_task(
        ckpt.model, task, "resid_pre", positions="all", ablation="zero", n_prompts=3
    )
    fraction, meaning = restored(ablated)
    assert meaning == "of the unablated metric kept"
    torch.testing.assert_close(fraction, ablated.scores.double() / ablated.target_baseline)
