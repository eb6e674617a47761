"""The model anatomy page: the block diagram of every preset's tiny twin names every hook point
of its schema (and of the built model) once, in forward order, and draws its wiring (parallel
sublayers side by side, dual streams, weight ties, DenseFormer weights, shared key/value heads,
gates); a clicked hook point shows the values `run_with_cache` gives for the page's input, at
the shape the schema gives for that input; bad clicks are messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from app.figures.anatomy import anatomy, place
from app.main import create_app
from app.pages.anatomy import diagram, hook_view, shape_for
from app.run import prepare
from tests.app.helpers import call, callback_key, figure, send, type_prompt, wait_for, z_of
from tests.conftest import tiny_presets
from workbench import names
from workbench.errors import InputError
from workbench.presets import get_preset
from workbench.schema import hook_schema


def nodes_of(fig) -> dict[str, tuple[float, float]]:
    """Each hook point's name and place in the diagram."""
    trace = next(t for t in fig.data if t.name == "hook points")
    return {n: (x, y) for n, x, y in zip(trace.customdata, trace.x, trace.y, strict=True)}


def test_every_tiny_presets_diagram_names_every_hook_point_once() -> None:
    for name in tiny_presets():
        config = get_preset(name).config
        weights = (
            torch.rand(config.n_layers, config.n_layers + 1) if config.depth_weighted else None
        )
        fig = anatomy(config, weights)
        trace = next(t for t in fig.data if t.name == "hook points")
        assert list(trace.customdata) == [s.name for s in hook_schema(config)], name
        nodes, edges = place(config)
        drawn = {n.spec.name for n in nodes}
        assert all(a in drawn and b in drawn for a, b in edges), name
        # every hook point but the embedding's is reached by an edge or starts a row
        starts = {
            min((n for n in nodes if n.row == r), key=lambda n: n.x).spec.name
            for r in {n.row for n in nodes}
        }
        reached = {b for _, b in edges} | starts | {names.POS_EMBED}
        assert drawn <= reached, (name, sorted(drawn - reached))


@pytest.mark.parametrize(
    "name",
    ["gpt2-small-tiny", "gptj-6b-tiny", "dual-stream-small-tiny", "algoformer-tiny",
     "denseformer-small-tiny", "bert-base-tiny", "cpvt-tiny-patch4-tiny", "t5-bias-small-tiny"],
)  # fmt: skip
def test_the_diagram_names_the_built_models_hook_points(name: str) -> None:
    model = workbench.build(name, seed=0)
    fig = anatomy(model.config, model.depth_weights() if model.config.depth_weighted else None)
    assert list(nodes_of(fig)) == [s.name for s in model.hook_specs()]
    assert set(nodes_of(fig)) == set(model.hook_dict)


def test_the_wiring_is_drawn_as_the_config_says() -> None:
    # sequential: the MLP after attention, both above the stream
    seq = nodes_of(anatomy(get_preset("gpt2-small-tiny").config))
    assert seq[names.mlp(0, "pre")][0] > seq[names.resid_mid(0)][0] > seq[names.attn_z(0)][0]
    assert seq[names.mlp(0, "pre")][1] > seq[names.resid_pre(0)][1]
    # parallel: attention above, the MLP below the stream, side by side
    par = nodes_of(anatomy(get_preset("gptj-6b-tiny").config))
    stream = par[names.resid_pre(0)][1]
    assert par[names.attn(0, "q")][1] > stream > par[names.mlp(0, "pre")][1]
    assert par[names.norm_scale(0, 1)][0] == par[names.norm_scale(0, 2)][0]
    assert par[names.resid_post(0)][0] > max(par[names.mlp_out(0)][0], par[names.attn_out(0)][0])
    # dual-stream: the token and context streams under the sum the sublayers read
    dual = nodes_of(anatomy(get_preset("dual-stream-small-tiny").config))
    sum_y = dual[names.resid_mid(0)][1]
    token, context = names.block(0, "hook_token_stream"), names.block(0, "hook_context_stream")
    assert dual[context][1] < dual[token][1] < sum_y
    # weight ties: blocks running the same weights share a frame colour and say whose
    config = get_preset("algoformer-tiny").config  # ties (0, 1, 2, 1, 2, 1, 2, 7)
    fig = anatomy(config)
    frames = [s for s in fig.layout.shapes if s.line.color == "#ccc"]
    fills = [f.fillcolor for f in frames]
    assert fills[1] == fills[3] == fills[5] != fills[2] == fills[4] == fills[6]
    texts = [a.text for a in fig.layout.annotations]
    assert "<b>block 3</b><br>weights of 1" in texts and "<b>block 1</b>" in texts
    # shared key/value heads and gates are named on the attention frame
    for preset, words in [
        ("mistral-7b-tiny", "2 key/value heads (grouped-query)"),
        ("falcon-7b-tiny", "1 key/value head (multi-query)"),
        ("gated-attn-small-tiny", "(output gate)"),
        ("fox-small-tiny", "(forget gate)"),
    ]:
        texts = [a.text for a in anatomy(get_preset(preset).config).layout.annotations]
        assert any(words in t for t in texts), preset
    gates = nodes_of(anatomy(get_preset("gated-attn-small-tiny").config))
    assert names.attn(0, "gate") in gates


def test_denseformer_depth_weights_are_the_models() -> None:
    model = workbench.build("denseformer-small-tiny", seed=0)
    with torch.no_grad():
        model.dwa_weights[1].copy_(torch.tensor([0.2, -0.3, 1.1]))
    registry = create_app().registry
    registry.add("dense", workbench.checkpoint.Checkpoint(model))
    fig, line = diagram(registry, "dense")
    heat = next(t for t in fig.data if t.type == "heatmap")
    np.testing.assert_allclose(np.array(heat.z), model.depth_weights().numpy())
    assert heat.z[1] == pytest.approx([0.2, -0.3, 1.1])
    assert "DenseFormer" in line


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name in ("vit-tiny-patch4-tiny", "t5-bias-small-tiny", "gemma-2b-tiny"):
        workbench.checkpoint.save(workbench.build(name, seed=0), folder / name)
    return create_app(models_dir=str(folder))


def click(hook: object) -> dict:
    return {"points": [{"x": 1, "y": 2, "customdata": hook}]}


@pytest.mark.parametrize(
    ("model", "prompt"),
    [
        ("induction-2l", "BOS t1 t2 t3 t1 t2"),
        ("vit-tiny-patch4-tiny", "sample 2"),
        ("t5-bias-small-tiny", "3 1 4 1 5"),
        ("gemma-2b-tiny", "2 7 1 8"),
    ],
)
def test_a_clicked_hooks_values_are_run_with_caches(app, model: str, prompt: str) -> None:
    registry = app.registry
    ckpt = registry.checkpoint(model)
    prepared = prepare(ckpt, prompt)
    with torch.no_grad():
        _, cache = ckpt.model.run_with_cache(prepared.inputs)
    for spec in hook_schema(ckpt.model.config):
        fig, info = hook_view(registry, model, prompt, click(spec.name))
        want = cache[spec.name]
        assert tuple(want.shape) == shape_for(spec, len(prepared.labels)), spec.name
        assert str(list(want.shape)) in info and info.startswith(spec.name)
        one = want[0] if spec.dims[0] == "batch" else want
        z = np.array(fig.data[0].z, dtype=float)
        if z.size == one.numel():  # not cut (a vocabulary's logits may be)
            np.testing.assert_allclose(z.ravel(), one.flatten().numpy(), rtol=1e-5, atol=1e-5)
        else:
            assert z.shape[1] == 1024 and "the first" in fig.layout.title.text


@pytest.mark.parametrize(
    ("clicked", "message"),
    [
        ({"points": []}, "could not read the clicked point"),
        ("node", "could not read the clicked point"),
        (click("blocks.9.hook_resid_pre"), "no hook point 'blocks.9.hook_resid_pre'"),
        (click(["hook_embed"]), "no hook point"),
        (click(None), "no hook point None"),
    ],
)
def test_bad_clicks_are_messages(app, clicked, message) -> None:
    with pytest.raises(InputError, match=message):
        hook_view(app.registry, "induction-2l", "BOS t1 t2", clicked)


def test_the_page_answers_through_the_server(server) -> None:
    url, app = server
    prompt = "BOS t1 t2 t3 t1"
    values = {"page.value": "anatomy", "model.value": "induction-2l", "prompt.value": prompt}
    drawn = call(url, "anatomy-diagram.figure", values, "page.value")
    assert drawn["anatomy-error"]["children"] == ""
    trace = next(
        t for t in drawn["anatomy-diagram"]["figure"]["data"] if t.get("name") == "hook points"
    )
    assert len(trace["customdata"]) == len(
        hook_schema(app.registry.checkpoint("induction-2l").model.config)
    )
    pattern = names.attn_pattern(1)
    reply = call(
        url,
        "anatomy-values.figure",
        {**values, "anatomy-diagram.clickData": click(pattern)},
        "anatomy-diagram.clickData",
    )
    assert reply["anatomy-hook-error"]["children"] == ""
    ckpt = app.registry.checkpoint("induction-2l")
    with torch.no_grad():
        _, cache = ckpt.model.run_with_cache(prepare(ckpt, prompt).inputs, names_filter=[pattern])
    z = z_of(reply["anatomy-values"]["figure"]["data"][0])
    np.testing.assert_allclose(z.ravel(), cache[pattern][0].flatten().numpy(), atol=1e-6)
    bad = call(
        url, "anatomy-values.figure", {**values, "prompt.value": "BOS banana"}, "prompt.value"
    )
    assert "'banana' is not in this model's vocabulary" in bad["anatomy-hook-error"]["children"]
    other = call(
        url, "anatomy-diagram.figure", {**values, "model.value": "/etc/passwd"}, "model.value"
    )
    assert "unknown model '/etc/passwd'" in other["anatomy-error"]["children"]
    hidden = {**values, "page.value": "attention"}
    assert status(url, "anatomy-values.figure", hidden) == 204  # not shown: nothing computed


def status(url: str, output: str, values: dict) -> int:
    """The HTTP status of one callback's request (as `call` makes it)."""
    key = callback_key(output, "prompt.value")
    return send(url, key, lambda d: values.get(f"{d['id']}.{d['property']}"), "prompt.value")[0]


CLICK_HOOK = """
const el = document.querySelector('#anatomy-diagram .js-plotly-plot');
const curve = el.data.findIndex(t => t.name === 'hook points');
const point = el.data[curve].customdata.indexOf(arguments[0]);
el.emit('plotly_click', {points: [{curveNumber: curve, pointNumber: point,
    x: el.data[curve].x[point], y: el.data[curve].y[point], customdata: arguments[0]}]});
"""


@pytest.mark.browser
def test_the_page_in_a_browser_shows_a_clicked_hooks_values(server, browser) -> None:
    from selenium.webdriver.common.by import By

    url, app = server
    browser.get(url + "/")
    wait_for(browser, lambda d: figure(d, "overview"))
    type_prompt(browser, "BOS t1 t2 t3 t1 t2")
    browser.find_element(By.XPATH, "//*[text()='model anatomy']").click()
    diagram = wait_for(browser, lambda d: (f := figure(d, "anatomy-diagram")) and f["n"] and f)
    assert "click one" in diagram["title"]
    assert (
        "2 blocks, sequential wiring, no norms"
        in browser.find_element(By.ID, "anatomy-summary").text
    )
    first = wait_for(browser, lambda d: (f := figure(d, "anatomy-values")) and f["n"] and f)
    assert first["title"].startswith(names.resid_post(1))  # the last block's output first
    hook = names.attn_pattern(1)
    browser.execute_script(CLICK_HOOK, hook)
    shown = wait_for(
        browser, lambda d: (f := figure(d, "anatomy-values")) and f["title"].startswith(hook) and f
    )
    ckpt = app.registry.checkpoint("induction-2l")
    with torch.no_grad():
        _, cache = ckpt.model.run_with_cache(
            prepare(ckpt, "BOS t1 t2 t3 t1 t2").inputs, names_filter=[hook]
        )
    want = cache[hook][0].reshape(-1, 6).numpy()  # head-by-query rows, key columns
    got = np.array([[np.nan if v is None else v for v in row] for row in shown["z"]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert shown["x"] == ["0:BOS", "1:t1", "2:t2", "3:t3", "4:t1", "5:t2"]
    info = browser.find_element(By.ID, "anatomy-hook").text
    assert info.startswith(hook) and "[1, 4, 6, 6]" in info
    assert browser.find_element(By.ID, "anatomy-hook-error").text == ""


def test_html_writes_the_diagram_from_the_cli(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from tests.app.figure_entry_points import use_declared
    from workbench.cli import cli

    use_declared(monkeypatch)
    out = tmp_path / "anatomy.html"
    result = CliRunner().invoke(cli, ["hooks", "gptj-6b-tiny", "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    config = get_preset("gptj-6b-tiny").config
    assert anatomy(config).layout.title.text in page
    assert all(f'"{s.name}"' in page for s in hook_schema(config))  # every hook point
