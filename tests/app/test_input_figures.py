"""The figures of vision, series and compiled RASP models build and hold the analyses'
numbers: the patch overlay, the variate x variate mixing, the decoded residual table and the
heads' operations."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

from app.figures.rasp import head_table, residual_table
from app.figures.series import variate_mixing
from app.figures.vision import patch_overlay
from app.inputs import example_input, series_note
from probes.rollout import input_patterns, patch_attention
from rasp.compiler.compiler import compile_rasp
from rasp.parser import load
from rasp.readout import rasp_labels, residual_by_layer
from workbench import open_checkpoint
from workbench.api import build
from workbench.checkpoint import Checkpoint


def _rows(z) -> list[list[float]]:
    return [list(row) for row in z]


def test_the_patch_overlay_holds_the_class_tokens_attention() -> None:
    checkpoint = Checkpoint(build("vit-tiny-patch4-tiny", seed=2), {"task": {"name": "bars"}})
    example = example_input(checkpoint, seed=1)
    found = patch_attention(input_patterns(checkpoint.model, example.inputs), side=4)
    fig = patch_overlay(example.inputs, found.grid(1, 3), "L1H3: class token's attention")
    image, overlay = fig.data
    assert isinstance(image, go.Image) and len(image.z) == 16 and len(image.z[0]) == 16
    assert _rows(overlay.z) == found.grid(1, 3).tolist()
    assert (overlay.x0, overlay.dx, overlay.y0, overlay.dy) == (1.5, 4.0, 1.5, 4.0)  # centres
    assert overlay.customdata[2][1] == "r2c1" and overlay.zmin == 0.0 and overlay.zmid is None
    assert len(fig.layout.shapes) == 2 * 5  # the 4x4 grid's lines
    rollout = patch_overlay(example.inputs, found.grid(1), "rollout", signed=True)
    assert rollout.data[1].zmid == 0.0 and _rows(rollout.data[1].z) == found.grid(1).tolist()


def test_the_variate_mixing_heatmap_holds_the_pattern_and_its_note() -> None:
    params = {"variates": 6, "lookback": 32}
    checkpoint = Checkpoint(
        build("itransformer-tiny"), {"task": {"name": "forecast", "params": params}}
    )
    example = example_input(checkpoint)
    patterns = input_patterns(checkpoint.model, example.inputs)
    assert patterns.shape == (2, 4, 6, 6)
    note = series_note(checkpoint, 6)
    fig = variate_mixing(patterns[0, 1], list(example.labels), "L0H1", note)
    heatmap = fig.data[0]
    assert _rows(heatmap.z) == patterns[0, 1].double().tolist()
    assert heatmap.x[3] == "v3 (v0 lagged 3)" and heatmap.y == heatmap.x
    assert "(v3, v0)" in fig.layout.title.text and fig.layout.title.text.startswith("L0H1<br>")
    signed = variate_mixing(patterns[0, 1] - 0.2, list(example.labels), "signed")
    assert signed.data[0].zmid == 0.0 and signed.layout.title.text == "signed"


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    program = load("rasp/programs/reverse.rasp").output
    compiled = compile_rasp(program, {"a", "b", "c"}, 4, validation_budget=30)
    checkpoint = open_checkpoint(compiled.save(tmp_path_factory.mktemp("rasp") / "reverse"))
    return compiled, checkpoint


def test_the_residual_table_shows_what_each_sublayer_wrote(reverse) -> None:
    compiled, checkpoint = reverse
    labels = rasp_labels(checkpoint)
    ids = torch.tensor([[0] + [compiled.token_ids[t] for t in "abc"]])
    readout = residual_by_layer(checkpoint.model, ids, labels)
    table = residual_table(readout).data[0]
    assert table.header.values == ("stage", "0:BOS", "1:a", "2:b", "3:c")
    stages, *columns = table.cells.values
    assert stages[0] == "embed" and stages[7] == "L3 attn"
    assert columns[1][0] == "tokens:a<br>indices:0"
    assert columns[1][2] == "length:3"  # L0 mlp turns the BOS share into the width
    assert [columns[p][7] for p in (1, 2, 3)] == ["reverse:c", "reverse:b", "reverse:a"]
    assert columns[1][3] == "·"  # L1 attn: no head, nothing written
    full = residual_table(readout, new_only=False).data[0].cells.values
    assert full[4][-1].split("<br>")[-1] == "reverse:a" and "length:3" in full[4][-1]


def test_the_head_table_names_each_heads_operation(reverse) -> None:
    _, checkpoint = reverse
    cells = head_table(rasp_labels(checkpoint)).data[0].cells.values
    assert list(cells[0]) == [0, 3] and list(cells[1]) == [0, 0]
    assert cells[2][1] == "reverse = aggregate(select(indices, opp_index, ==), tokens)"
