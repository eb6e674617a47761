"""The probes page through a real waitress server, as a browser drives it: each analysis's
figure holds the numbers its probe command prints with `--json` for the same settings; a run
reports its progress while the server keeps answering and can be cancelled; bad input is a
message; every callback answers garbage; `--html` writes the same figures."""

from __future__ import annotations

import json
import urllib.request
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from typer.testing import CliRunner

import app.background
import app.probing
import workbench
import workbench.html
from app.background import Run
from app.models import ModelRegistry
from app.probing import Settings, run
from probes.invert import hidden_states, invert
from tests.app.helpers import CALLBACKS, GARBAGE, answer_garbage, call, ended, gate, poll_until_idle
from workbench.cli import cli

runner = CliRunner()
DEFAULTS = {
    "probe": {"site": "resid_post", "kind": "logistic", "n-prompts": 8, "seed": 0},
    "decompose": {"site": "resid_post", "n-prompts": 4, "seed": 0},
    "neuron-path": {"site": "mlp_post", "n-prompts": 2, "steps": 2, "n-random": 2, "seed": 0},
    "invert": {
        "layer": 1, "site": "resid_post", "source": "task", "n-prompts": 2, "n-collision": 4,
        "tolerance": 1e-3, "certify": ["certify"], "seed": 0,
    },
}  # fmt: skip
MODEL = {"probe": "induction-2l", "decompose": "induction-2l", "invert": "induction-2l"}
MODEL["neuron-path"] = "modadd-1l"


def start(url: str, analysis: object, model: object = "", prompt: str = "", **changes) -> dict:
    values = {
        "page.value": "probes",
        "probes-start.n_clicks": 1,
        "model.value": model if model != "" else MODEL.get(str(analysis), "induction-2l"),
        "prompt.value": prompt,
        "probes-analysis.value": analysis,
    }
    for name, value in {**DEFAULTS.get(str(analysis), {}), **changes}.items():
        values[f"probes-{analysis}-{name.replace('_', '-')}.value"] = value
    return call(url, "probes-run.data", values, "probes-start.n_clicks")


def poll(url: str, run_id: object, dims: object = "3") -> dict:
    values = {
        "page.value": "probes",
        "probes-run.data": run_id,
        "probes-poll.n_intervals": 1,
        "probes-view-dims.value": dims,
    }
    return call(url, "probes-progress.children", values, "probes-poll.n_intervals")


def finish(url: str, run_id: str, dims: object = "3") -> dict:
    """Poll until the run ends; its last reply."""
    values = {"page.value": "probes", "probes-run.data": run_id, "probes-view-dims.value": dims}
    return poll_until_idle(url, "probes-progress.children", values, "probes-poll", 120)


def run_page(url: str, analysis: str, **changes) -> dict:
    started = start(url, analysis, **changes)
    assert started["probes-error"]["children"] == "", started
    reply = finish(url, started["probes-run"]["data"])
    assert reply["probes-error"]["children"] == "", reply
    return {**reply, "run_id": started["probes-run"]["data"]}


def cli_json(command: str, *args: str) -> object:
    result = runner.invoke(cli, [command, *args, "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def flags(analysis: str, **changes) -> list[str]:
    """The command's options for the page's settings."""
    out = ["--model", MODEL[analysis]]
    for name, value in {**DEFAULTS[analysis], **changes}.items():
        if name == "source":
            continue
        if name == "certify":
            out += ["--certify"] if value else []
            continue
        out += [f"--{name.replace('_', '-')}", str(value)]
    return out


def traces(figure: dict, name: str) -> list[dict]:
    return [t for t in figure["data"] if t.get("name") == name]


def test_linear_probes_equal_the_cli(server) -> None:
    url, _ = server
    for changes in ({}, {"kind": "ridge", "site": "mlp_out", "seed": 3, "n-prompts": 16}):
        model = "modadd-1l" if changes else "induction-2l"
        reply = run_page(url, "probe", model=model, **changes)
        assert reply["probes-progress"]["children"].startswith("done: linear probes")
        printed = cli_json("probe", *flags("probe", **changes)[2:], "--model", model)
        figure = reply["probes-figure"]["figure"]
        for name, key in (("train", "train"), ("test", "test"), ("control task", "control")):
            (line,) = traces(figure, name)
            np.testing.assert_allclose(line["y"], printed[key], rtol=0, atol=1e-12)
            assert line["x"] == printed["layers"]
        (bars,) = traces(figure, "selectivity (test - control)")
        np.testing.assert_allclose(bars["y"], printed["selectivity"], rtol=0, atol=1e-12)
        score = "R^2" if changes else "accuracy"
        assert f"{printed['kind']} probes at {printed['site']}: {score}" in str(
            figure["layout"]["title"]
        )


def test_the_decomposition_equals_the_cli_and_shows_any_layer_in_2d_or_3d(server) -> None:
    url, _ = server
    reply = run_page(url, "decompose")
    printed = cli_json("decompose", *flags("decompose"))
    layers = printed["layers"]
    figure = reply["probes-figure"]["figure"]
    for part in ("position", "context", "residual"):
        (bars,) = traces(figure, part)
        np.testing.assert_allclose(bars["y"], [g["share"][part] for g in layers], atol=1e-12)
    for g in layers:
        (angles,) = traces(figure, f"cosines, layer {g['layer']}")
        np.testing.assert_allclose(angles["y"], g["cosines"], atol=1e-12)
    last = layers[-1]
    (spiral,) = traces(figure, "positions pos[t]")
    assert spiral["type"] == "scatter3d"
    shown = np.array([spiral["x"], spiral["y"], spiral["z"]]).T
    np.testing.assert_allclose(shown, last["pos_pca"], atol=1e-12)
    (contexts,) = traces(figure, "contexts ctx[c]")
    np.testing.assert_allclose(np.array([contexts["x"], contexts["y"]]).T, last["ctx_pca"])
    # the layer and the spiral's dimensions are chosen on the page, from the same run
    assert reply["probes-view-layer"] == {"options": ["0", "1"], "value": "1"}
    assert reply["probes-view"]["style"] == {}
    values = {
        "page.value": "probes",
        "probes-run.data": reply["run_id"],
        "probes-view-layer.value": "0",
        "probes-view-dims.value": "2",
    }
    view = call(url, "probes-figure.figure", values, "probes-view-layer.value")
    (spiral,) = traces(view["probes-figure"]["figure"], "positions pos[t]")
    assert spiral["type"] == "scatter"
    first = np.array(layers[0]["pos_pca"])
    np.testing.assert_allclose(np.array([spiral["x"], spiral["y"]]).T, first[:, :2], atol=1e-12)
    for layer, dims, message in (("7", "2", "layer shown must be a whole number from 0 to 1"),
                                 ("0", "4", "number of dimensions must be a whole number"),
                                 (["0"], "2", "layer shown must be a whole number")):  # fmt: skip
        values |= {"probes-view-layer.value": layer, "probes-view-dims.value": dims}
        bad = call(url, "probes-figure.figure", values, "probes-view-layer.value")
        assert message in bad["probes-error"]["children"]


def test_neuron_paths_equal_the_cli(server) -> None:
    url, _ = server
    reply = run_page(url, "neuron-path")
    printed = cli_json("neuron-path", *flags("neuron-path"))
    figure = reply["probes-figure"]["figure"]
    assert len(printed) == 2
    influence, drop = traces(figure, "joint influence"), traces(figure, "drop when suppressed")
    randoms = traces(figure, "random paths' drops")
    for i, example in enumerate(printed):
        for path in example["paths"]:
            line = traces(figure, f"{path['method']} path")[i]
            assert line["y"] == path["neurons"] and line["x"] == list(range(len(path["neurons"])))
            np.testing.assert_allclose(line["customdata"], path["scores"], atol=1e-12)
        n = len(example["random_drop"])
        np.testing.assert_allclose(
            influence[i]["y"], [*example["influence"], sum(example["random_influence"]) / n]
        )
        np.testing.assert_allclose(
            drop[i]["y"], [*example["drop"], sum(example["random_drop"]) / n]
        )
        np.testing.assert_allclose(randoms[i]["y"], example["random_drop"])
        title = f"example {i}: target {example['target']}, p = {example['output']:.4f}"
        assert title in [a["text"] for a in figure["layout"]["annotations"]]


def test_the_inversion_equals_the_cli(server) -> None:
    url, _ = server
    reply = run_page(url, "invert")
    printed = cli_json("invert", *flags("invert"))
    vocab = workbench.open_checkpoint("induction-2l").vocab
    figure = reply["probes-figure"]["figure"]
    distances = traces(figure, "distance of the accepted state")
    margins = traces(figure, "margin (nearest other token's state)")
    assert len(distances) == len(margins) == len(printed["inversions"]) == 2
    for inversion, points, bars in zip(printed["inversions"], distances, margins, strict=True):
        assert set(inversion["status"]) == {"unique"}
        labels = [f"{t}:{vocab[token]}" for t, token in enumerate(inversion["tokens"])]
        assert points["x"] == labels == bars["x"]
        np.testing.assert_allclose(points["y"], inversion["distances"], rtol=0, atol=0)
        np.testing.assert_allclose(bars["y"], inversion["margins"], rtol=0, atol=0)
    (clash,) = traces(figure, "smallest distance between two prompts")
    np.testing.assert_allclose(clash["y"], printed["collisions"]["min_distance"])
    assert f"exact recovery {printed['recovery']:.3f} over 2 sequences" in str(
        figure["layout"]["title"]
    )


def test_the_page_inverts_its_prompt(server) -> None:
    url, the_app = server
    prompt = "BOS t1 t2 t3 t1 t2"
    reply = run_page(url, "invert", prompt=prompt, source="prompt", layer=0, certify=[])
    (points,) = traces(reply["probes-figure"]["figure"], "distance of the accepted state")
    assert points["x"] == [f"{t}:{w}" for t, w in enumerate(prompt.split())]
    assert traces(reply["probes-figure"]["figure"], "margin (nearest other token's state)") == []
    ckpt = the_app.registry.checkpoint("induction-2l")
    ids = [ckpt.vocab.index(w) for w in prompt.split()]
    import torch

    states = hidden_states(ckpt.model, torch.tensor(ids), 0)
    direct = invert(ckpt.model, states, layer=0)
    assert list(direct.tokens) == ids
    np.testing.assert_allclose(points["y"], direct.distances, atol=1e-6)


@pytest.mark.parametrize(
    ("analysis", "changes", "message"),
    [
        ("nope", {}, "the analysis must be one of: probe, decompose, neuron-path, invert"),
        (["probe"], {}, "the analysis must be one of"),
        ("probe", {"n-prompts": 1}, "number of sequences must be a whole number from 2 to 1024"),
        ("probe", {"n-prompts": 2.5}, "number of sequences must be a whole number"),
        ("probe", {"seed": -1}, "seed must be a whole number from 0 to 4294967295"),
        ("probe", {"site": "resid"}, "the site must be one of: resid_pre"),
        ("probe", {"kind": None}, "the kind must be one of: logistic, ridge"),
        ("decompose", {"n-prompts": None}, "number of sequences must be a whole number"),
        (
            "neuron-path",
            {"site": "resid_post"},
            "the neuron site must be one of: mlp_post, mlp_pre",
        ),
        ("neuron-path", {"steps": 0}, "number of integration steps must be a whole number"),
        ("neuron-path", {"n-random": 1000}, "number of random paths must be a whole number"),
        ("neuron-path", {"n-prompts": 17}, "number of examples must be a whole number from 1"),
        ("invert", {"layer": -1}, "the layer must be a whole number from 0"),
        ("invert", {"tolerance": 0}, "the tolerance must be a number above 0"),
        ("invert", {"tolerance": "x"}, "the tolerance must be a number above 0"),
        ("invert", {"certify": "yes"}, "the certify box must be ticked or not"),
        (
            "invert",
            {"site": "mlp_out"},
            "the site must be one of: resid_pre, resid_mid, resid_post",
        ),
        ("invert", {"source": "file"}, "the source must be one of: task, prompt"),
        ("invert", {"source": "prompt"}, "type a prompt above to invert it"),
        ("invert", {"n-collision": 5000}, "collision test must be a whole number from 0 to 2048"),
    ],
)
def test_bad_settings_are_messages_before_any_run(server, analysis, changes, message) -> None:
    url, _ = server
    reply = start(url, analysis, model="induction-2l", **changes)
    assert message in reply["probes-error"]["children"]
    assert "probes-run" not in reply  # no run started


def test_an_unknown_model_is_a_message(server) -> None:
    url, _ = server
    for model in ("/etc", ["induction-2l"], None):
        reply = start(url, "probe", model=model)
        assert f"unknown model {model!r}" in reply["probes-error"]["children"]


@pytest.mark.parametrize(
    ("analysis", "model", "changes", "message"),
    [
        ("invert", "induction-2l", {"layer": 5}, "layers [5] are out of range"),
        ("neuron-path", "induction-2l", {}, "this model has no MLP"),
        (
            "invert",
            "modadd-1l",
            {"layer": 0, "n-prompts": 1, "n-collision": 1},
            "at least 2 different",
        ),
        ("invert", "induction-2l", {"source": "prompt"}, "'banana' is not in this model"),
    ],
)
def test_bad_runs_are_messages(server, analysis, model, changes, message) -> None:
    url, _ = server
    started = start(url, analysis, model=model, prompt="BOS banana", **changes)
    reply = finish(url, started["probes-run"]["data"])
    assert message in reply["probes-error"]["children"]
    assert message in reply["probes-figure"]["figure"]["layout"]["annotations"][0]["text"]
    assert reply["probes-progress"]["children"] == "failed"


def test_a_model_without_a_task_says_so_and_its_prompt_can_be_inverted(tmp_path) -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    workbench.checkpoint.save(model, tmp_path / "tiny")
    registry = ModelRegistry.offering([str(tmp_path / "tiny")])
    values = {"site": "resid_post", "n_prompts": 4, "seed": 0}
    settings = Settings.of(registry, "decompose", "tiny", values, "")
    with pytest.raises(workbench.errors.InputError, match="not trained on a built-in task"):
        run(registry, settings, Run())
    values = {"layer": 0, "site": "resid_pre", "source": "prompt", "tolerance": 1e-3, "seed": 0}
    settings = Settings.of(registry, "invert", "tiny", values | {"certify": ["certify"]}, "5 1 7")
    report = run(registry, settings, Run()).result
    assert report.recovery == 1.0 and report.inversions[0].tokens == (5, 1, 7)
    assert report.collisions is None and report.names == {1: "1", 5: "5", 7: "7"}


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch):
    """A linear probe stops at its first progress report until released: a long run, on
    demand. The reports it made are recorded."""
    return gate(monkeypatch, app.probing, "task_probe")


def test_progress_shows_while_the_server_keeps_answering_and_cancel_stops_the_run(
    server, gated
) -> None:
    url, the_app = server
    reached, release, reports = gated
    run_id = start(url, "probe")["probes-run"]["data"]
    try:
        assert reached.wait(30)
        running = poll(url, run_id)
        assert running["probes-poll"]["disabled"] is False
        bar, words = running["probes-progress"]["children"]
        assert reports[0] == (1, 2) and words.startswith(" linear probes: 1 of 2 steps")
        assert (bar["props"]["value"], bar["props"]["max"]) == ("1", "2")
        with urllib.request.urlopen(url + "/", timeout=5) as page:  # a page load never waits
            assert page.status == 200
        values = {"page.value": "probes", "probes-run.data": run_id, "probes-cancel.n_clicks": 1}
        cancelling = call(url, "probes-error.children", values, "probes-cancel.n_clicks")
        assert cancelling["probes-progress"]["children"] == "cancelling..."
    finally:
        release.set()
    reply = finish(url, run_id)
    assert reply["probes-progress"]["children"] == "cancelled after 1 of 2 steps"
    assert reply["probes-figure"]["figure"]["data"] == []
    offered = the_app.registry.get("induction-2l")
    assert offered.lock.acquire(timeout=5)  # the cancelled run let go of the model
    offered.lock.release()


def test_a_new_run_from_the_page_cancels_its_last_one(server, gated) -> None:
    url, _ = server
    reached, release, _ = gated
    first = start(url, "probe")["probes-run"]["data"]
    try:
        assert reached.wait(30)
        values = {
            "page.value": "probes",
            "probes-start.n_clicks": 1,
            "model.value": "induction-2l",
            "probes-analysis.value": "decompose",
            "probes-run.data": first,
            **{f"probes-decompose-{k}.value": v for k, v in DEFAULTS["decompose"].items()},
        }
        second = call(url, "probes-run.data", values, "probes-start.n_clicks")
    finally:
        release.set()
    assert finish(url, first)["probes-progress"]["children"].startswith("cancelled")
    done = finish(url, second["probes-run"]["data"])
    assert done["probes-progress"]["children"].startswith("done: position/context")


class Recorded(Run):
    def __init__(self, seen: list[tuple[int, int]]) -> None:
        super().__init__()
        self.seen = seen

    def progress(self, done: int, total: int) -> None:
        self.seen.append((done, total))
        super().progress(done, total)


def test_every_analysis_reports_every_step_in_order() -> None:
    registry = ModelRegistry.offering()
    for analysis, values in DEFAULTS.items():
        values = {k.replace("-", "_"): v for k, v in values.items()}
        settings = Settings.of(registry, analysis, MODEL[analysis], values, "")
        seen: list[tuple[int, int]] = []
        run(registry, settings, Recorded(seen))
        total = seen[-1][1]
        assert seen[-1] == (total, total) and {t for _, t in seen} == {total}, analysis
        assert [d for d, _ in seen] == sorted({d for d, _ in seen}), analysis
    assert total == 2 * 25 + 1  # inversion: each position of 2 sequences, one collision batch


def test_unknown_runs_are_messages(server) -> None:
    url, _ = server
    for run_id in ("nope", 5, ["x"]):
        assert "run it again" in poll(url, run_id)["probes-error"]["children"]
    values = {"page.value": "probes", "probes-cancel.n_clicks": 1}
    reply = call(url, "probes-error.children", values, "probes-cancel.n_clicks")
    assert (
        reply["probes-error"]["children"] == "nothing to cancel: no analysis has run on this page"
    )


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_the_page_answers_garbage_while_shown(server, garbage) -> None:
    """Every probes callback with the page shown and every other value garbage."""
    url, _ = server
    keys = [k for k in CALLBACKS if "..probes-" in k]
    assert len(keys) == 5
    answer_garbage(url, keys, garbage, "probes")


@pytest.mark.parametrize("command", ["probe", "decompose", "neuron-path", "invert"])
def test_html_writes_the_pages_figure(tmp_path, monkeypatch, command) -> None:
    """`workbench COMMAND --html FILE`: the page's figure, through the entry point that
    pyproject declares, with the numbers the command prints."""
    function = {"probe": "probe_figure", "decompose": "decompose_figure",
                "neuron-path": "neuron_path_figure", "invert": "inversion_figure"}[command]  # fmt: skip
    point = EntryPoint(command, f"app.figures.probes:{function}", workbench.html.GROUP)
    monkeypatch.setattr(workbench.html, "entry_points", lambda group: [point])
    out = tmp_path / f"{command}.html"
    args = [command, *flags(command), "--json", "--threads", "1"]
    printed = runner.invoke(cli, [*args, "--html", str(out)])
    assert printed.exit_code == 0, printed.output
    page = out.read_text()
    assert page.lower().startswith("<!doctype html>") and "Plotly.newPlot" in page
    report = json.loads(printed.output)
    first = {
        "probe": f"logistic probes at resid_post: accuracy per layer ({report['n_train']}"
        if command == "probe" else "",
        "decompose": "position\\u002fcontext decomposition at resid_post (4 contexts of 25",
        "neuron-path": "influential neuron paths",
        "invert": "SipIt at resid_post of layer 1: exact recovery 1.000 over 2 sequences",
    }[command]  # fmt: skip
    assert first in page
    (tmp_path / "dir.html").mkdir()
    refused = runner.invoke(cli, [*args, "--html", str(tmp_path / "dir.html")])
    assert refused.exit_code != 0 and "is a directory" in refused.output


class NoLock:
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass


@pytest.mark.parametrize("locked", [True, False], ids=["one dual level at a time", "no lock"])
def test_neuron_paths_of_two_models_run_at_once(tmp_path, monkeypatch, locked) -> None:
    """Forward-mode AD has one dual level per process: two models' searches in two threads
    take turns (without the page's lock, the second fails)."""
    import shutil

    shutil.copytree(workbench.api.builtin_dir("modadd-1l"), tmp_path / "copy")
    registry = ModelRegistry.offering([str(tmp_path / "copy")])
    if not locked:
        monkeypatch.setattr(app.probing, "_DUAL_LEVEL", NoLock())
    values = {"site": "mlp_post", "n_prompts": 2, "steps": 8, "n_random": 4, "seed": 0}
    runs = app.background.Runs("test run")
    started = [
        runs.start(
            lambda p, m=m: run(registry, Settings.of(registry, "neuron-path", m, values, ""), p)
        )
        for m in ("modadd-1l", "copy")
    ]
    states = [ended(one, 30) for one in started]
    if locked:
        assert [s.status for s in states] == ["done", "done"], [s.error for s in states]
        first, second = (json.loads(s.result.result.to_json()) for s in states)
        assert first == second  # the same weights: the same paths and numbers
    else:
        assert "failed" in [s.status for s in states]
