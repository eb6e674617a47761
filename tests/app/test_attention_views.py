"""The attention views beyond one small matrix: long inputs go as windows and pooled typed
arrays, a zoom fetches its window at full resolution, BertViz-style lines, heads overlaid, the
token view; each checked against the patterns computed alone."""

from __future__ import annotations

import json

import dash
import numpy as np
import plotly.io as pio
import pytest
import torch

import workbench
from app.figures.attention import (
    HEAD_COLOURS,
    MAX_CELLS,
    Window,
    head_lines,
    head_overlay,
    pool_max_abs,
)
from app.main import create_app
from app.run import attention_patterns
from app.views.attention import head_view, token_view, zoomed
from workbench.errors import InputError


def z_of(trace) -> np.ndarray:
    z = trace.z
    return np.asarray(z, dtype=float) if not isinstance(z, dict) else np.asarray(z)


@pytest.fixture(scope="module")
def long_app(tmp_path_factory):
    """A model that takes 1,024 tokens (raw ids), offered by directory."""
    torch.manual_seed(0)
    model = workbench.build("gpt2-small-tiny", n_layers=2, n_ctx=1024, seed=0)
    directory = tmp_path_factory.mktemp("models") / "long"
    workbench.checkpoint.save(model, directory)
    return create_app([str(directory)])


LONG = " ".join(str(i % 50) for i in range(1024))


def test_pooling_keeps_each_blocks_largest_magnitude_and_its_sign() -> None:
    m = torch.zeros(5, 7)
    m[1, 2], m[4, 6], m[0, 4] = 0.9, -0.7, 0.3
    pooled = pool_max_abs(m, 2, 3)
    assert pooled.shape == (3, 3)
    assert pooled[0, 0] == 0.9 and pooled[2, 2] == -0.7 and pooled[0, 1] == 0.3
    assert pooled.abs().sum() == pytest.approx(0.9 + 0.7 + 0.3)


def test_a_1024_token_head_goes_pooled_as_a_compact_typed_array(long_app) -> None:
    patterns, prepared = attention_patterns(long_app.registry, "long", LONG)
    assert patterns.shape[-1] == 1024 and len(prepared.labels) == 1024
    fig, shown = head_view(long_app.registry, "long", LONG, None)
    assert shown == Window.full(1024)
    trace = fig.data[0]
    assert trace.x is None and trace.dx == 1024 // MAX_CELLS  # numeric axes, 4x4 blocks
    sent = json.loads(pio.to_json(fig))["data"][0]["z"]
    assert sent["dtype"] == "f4" and "bdata" in sent  # base64 float32, not JSON numbers
    assert len(pio.to_json(fig)) < 600_000  # a 256 x 256 float32 array and its labels
    expected = pool_max_abs(patterns[0, 0], 4, 4)
    np.testing.assert_allclose(np.asarray(trace.z), expected.numpy(), atol=1e-7)
    assert "4x4 blocks" in fig.layout.title.text


def test_a_zoom_fetches_its_window_at_full_resolution(long_app) -> None:
    patterns, prepared = attention_patterns(long_app.registry, "long", LONG)
    full, _ = head_view(long_app.registry, "long", LONG, None)
    drawn = {"window": [0, 1024, 0, 1024], **full.layout.meta}
    assert drawn["origin"] == [0, 0] and drawn["block"] == [4, 4]  # cell i at 4 i
    # the pooled axes count positions; a zoom shows whole blocks: those it touches
    relayout = {
        "xaxis.range[0]": 449.5,  # in block 112 (448..451, drawn from 446 to 450)
        "xaxis.range[1]": 549.5,  # in block 137 (548..551)
        "yaxis.range[0]": 601.0,  # the y axis is reversed; block 150 (600..603)
        "yaxis.range[1]": 498.5,  # block 125 (500..503), drawn from 498
    }
    window = zoomed(relayout, drawn)
    assert window == [500, 604, 448, 552]
    as_call = {"xaxis.range": [449.5, 549.5], "yaxis.range": [601.0, 498.5]}  # Plotly.relayout
    assert zoomed(as_call, drawn) == window
    fig, _ = head_view(long_app.registry, "long", LONG, None, window=window)
    trace = fig.data[0]
    assert trace.x[0] == f"448:{prepared.labels[448]}" and len(trace.y) == 104
    np.testing.assert_allclose(np.asarray(trace.z), patterns[0, 0, 500:604, 448:552], atol=1e-7)
    # a zoom on those label axes counts cells from the window's start: cell i spans i -+ 1/2
    inner = {"window": window, **fig.layout.meta}
    assert inner["origin"] == [0, 0] and inner["block"] == [1, 1]
    cells = {"xaxis.range[0]": 9.5, "xaxis.range[1]": 19.0, "yaxis.range[0]": 4.0,
             "yaxis.range[1]": -0.5}  # fmt: skip
    assert zoomed(cells, inner) == [500, 505, 458, 468]  # cells 0..4 and 10..19 (19.0: in)
    only_x = {"xaxis.range[0]": 9.5, "xaxis.range[1]": 19.5}  # a thin drag: one axis
    assert zoomed(only_x, inner) == [500, 604, 458, 468]
    assert zoomed({"xaxis.autorange": True}, drawn) is None  # double-click: every position
    for garbage in (
        {"xaxis.range[0]": float("nan"), "xaxis.range[1]": 3.0},
        {"xaxis.range[0]": 1e999, "xaxis.range[1]": 3.0},
        {"xaxis.range": "all"},
        {"autosize": True},
    ):
        with pytest.raises(dash.exceptions.PreventUpdate):
            zoomed(garbage, drawn)
    with pytest.raises(dash.exceptions.PreventUpdate):
        zoomed(relayout, {"window": [0, 1024, 0, 1024], "origin": [0, 0], "block": [0, True]})
    # a stale window (of a longer prompt) shows every position
    _, again = head_view(long_app.registry, "long", "1 2 3", None, window=window)
    assert again == Window.full(3)
    with pytest.raises(InputError, match="zoomed window"):
        head_view(long_app.registry, "long", "1 2 3", None, window="everything")
    with pytest.raises(InputError, match="zoomed window"):
        head_view(long_app.registry, "long", "1 2 3", None, window=[0, 1e999, 0, 2])


def test_a_signed_windows_row_sums_are_its_queries_whole_rows() -> None:
    from app.figures.attention import head_pattern

    mixing = torch.tensor([[1.0, -2.0, 0.5], [0.25, 0.25, -1.0], [3.0, 0.0, 0.0]])
    fig = head_pattern(mixing, ["a", "b", "c"], "L0H0", mixing=True, window=Window(1, 3, 0, 2))
    assert "row sums from query 1: -0.50, 3.00)" in fig.layout.title.text  # keys 0..2 all
    assert fig.data[0].zmid == 0 and fig.data[0].colorscale[0][1] != "#ffffff"


def test_lines_draw_each_weight_as_a_line_whose_opacity_is_its_share_of_the_peak() -> None:
    pattern = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.01, 0.29, 0.7]])
    fig = head_lines({"L0H0": pattern}, ["a", "b", "c"], "head")
    lines = [t for t in fig.data if t.mode == "lines" and t.x[0] is not None]
    drawn = []
    for trace in lines:
        ys = list(trace.y)
        for i in range(0, len(ys), 3):
            drawn.append((int(ys[i]), int(ys[i + 1]), trace.opacity))
    # 0.01 is under 2% of the peak: not drawn; opacity is the weight's tenth, rounded up
    assert sorted(drawn) == [(0, 0, 1.0), (1, 0, 0.5), (1, 1, 0.5), (2, 1, 0.3), (2, 2, 0.7)]
    texts = [t for t in fig.data if t.mode == "text"]
    assert list(texts[0].text) == ["0:a", "1:b", "2:c"] and list(texts[1].text) == list(
        texts[0].text
    )
    with pytest.raises(InputError, match="at most 128 positions"):
        head_lines({"h": torch.eye(200)}, ["t"] * 200, "head")
    window = Window(150, 160, 100, 200)  # a window of a long input is drawable
    assert head_lines({"h": torch.eye(200)}, ["t"] * 200, "head", window=window).data


def test_overlaid_heads_mix_their_colours_by_weight() -> None:
    one = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    other = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    fig = head_overlay({"H0": one, "H1": other}, ["a", "b"], "layer 0")
    image = np.asarray(fig.data[0].z)
    colour = [int(HEAD_COLOURS[0][j : j + 2], 16) for j in (1, 3, 5)]
    assert image[0, 0].tolist() == colour  # only H0 attends: its colour
    assert image[1, 0].tolist() == [255, 255, 255]  # nobody: white
    assert np.asarray(fig.data[0].customdata)[0, 1].tolist() == [0.0, 1.0]  # each head's weight
    assert "H1: %{customdata[1]:.3f}" in fig.data[0].hovertemplate
    assert fig.data[0].x0 == 0 and fig.layout.meta == {"origin": [0, 0], "block": [1, 1]}
    assert [t.name for t in fig.data[1:]] == ["H0", "H1"]  # a legend of the colours


def test_the_head_view_overlays_chosen_heads_and_draws_lines() -> None:
    app = create_app()
    prompt = "BOS t1 t2 t3 t1 t2"
    click = {"points": [{"x": "H1", "y": "L1"}]}
    fig, _ = head_view(app.registry, "induction-2l", prompt, click, "overlay", "matrix", [0, 3])
    assert [t.name for t in fig.data[1:]] == ["L1H0", "L1H3"]
    fig, _ = head_view(app.registry, "induction-2l", prompt, click, "head", "lines")
    assert fig.layout.title.text == "head L1H1" and len(fig.data) > 3
    fig, _ = head_view(app.registry, "induction-2l", prompt, click, "overlay", "lines")
    assert {t.name for t in fig.data if t.name} == {f"L1H{h}" for h in range(4)}
    with pytest.raises(InputError, match="choose heads to overlay"):
        head_view(app.registry, "induction-2l", prompt, click, "overlay", "matrix", [9])
    with pytest.raises(InputError, match="choose a head view"):
        head_view(app.registry, "induction-2l", prompt, click, "sideways")


def test_the_token_view_shows_a_tokens_row_and_column_across_the_layer() -> None:
    app = create_app()
    prompt = "BOS t1 t2 t3 t1 t2"
    patterns, _ = attention_patterns(app.registry, "induction-2l", prompt)
    click = {"points": [{"x": "H0", "y": "L1"}]}
    fig = token_view(app.registry, "induction-2l", prompt, click, {"points": [{"x": "4:t1"}]})
    to, by = fig.data
    np.testing.assert_allclose(np.asarray(to.z)[:4], patterns[1, :, 4, :], atol=1e-7)
    np.testing.assert_allclose(np.asarray(to.z)[4], patterns[1, :, 4, :].mean(0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(by.z)[:4], patterns[1, :, :, 4], atol=1e-7)
    assert list(to.y) == ["H0", "H1", "H2", "H3", "mean"] and to.x[4] == "4:t1"
    last = token_view(app.registry, "induction-2l", prompt, click, None)
    assert "position 5:t2" in last.layout.title.text  # default: the last token
    with pytest.raises(InputError, match="clicked token"):
        token_view(app.registry, "induction-2l", prompt, click, {"points": [{"x": "t1"}]})


def test_a_1024_token_head_renders_every_view(long_app) -> None:
    click = {"points": [{"x": "H1", "y": "L1"}]}
    fig, _ = head_view(long_app.registry, "long", LONG, click, "average")
    assert np.asarray(fig.data[0].z).shape == (MAX_CELLS, MAX_CELLS)
    with pytest.raises(InputError, match="zoom in"):
        head_view(long_app.registry, "long", LONG, click, "overlay")
    fig = token_view(long_app.registry, "long", LONG, click, None)
    assert np.asarray(fig.data[0].z).shape == (5, 1024)


def test_a_prompts_views_share_one_run_and_old_results_leave_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.run
    from app.models import Recent

    app_ = create_app()
    runs: list[object] = []
    real = app.run.collect
    monkeypatch.setattr(
        app.run, "collect", lambda *a, **k: runs.append(a[2].labels) or real(*a, **k)
    )
    first, _ = attention_patterns(app_.registry, "induction-2l", "BOS t1 t2")
    again, _ = attention_patterns(app_.registry, "induction-2l", "BOS t1 t2")
    assert again is first and runs == [["BOS", "t1", "t2"]]  # a click runs nothing
    spaced, _ = attention_patterns(app_.registry, "induction-2l", "BOS   t1 t2 " + " " * 10_000)
    assert spaced is first and len(runs) == 1  # what the model reads is the key
    attention_patterns(app_.registry, "induction-2l", "BOS t1 t3")
    assert runs[1] == ["BOS", "t1", "t3"]
    with pytest.raises(InputError, match="at most 100,000 are read"):
        attention_patterns(app_.registry, "induction-2l", "BOS " + " " * 100_000)
    recent = Recent(budget=100)
    recent.put(("a",), "A", torch.zeros(10))  # 40 bytes
    recent.put(("b",), "B", torch.zeros(10))
    assert recent.get(("a",)) == "A"  # now the most recent
    recent.put(("c",), "C", torch.zeros(10))  # 120 bytes: the oldest, b, leaves
    assert recent.get(("b",)) is None and recent.get(("a",)) == "A" and recent.get(("c",)) == "C"
    recent.put(("d",), "D", torch.zeros(100))  # larger than the budget: kept by nobody
    assert recent.get(("d",)) is None


def test_a_summary_undefined_for_every_head_says_so() -> None:
    app_ = create_app()
    from app.prompts import example_prompt
    from app.views.attention import model_view

    prompt = example_prompt(app_.registry.checkpoint("modadd-1l"))  # no repeated token
    empty = model_view(app_.registry, "modadd-1l", prompt, "induction")
    assert "choose another head summary" in empty.layout.annotations[0].text
    shown = model_view(app_.registry, "modadd-1l", prompt, "entropy")
    assert not shown.layout.annotations  # numbers, no message
