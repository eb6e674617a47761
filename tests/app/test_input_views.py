"""Vision, series and compiled-RASP models on the page: their inputs (task samples, an
uploaded PNG), the input tab's figures, the RASP head names, and the neuron view's scores
equal to the model's own pre-softmax scores."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

import workbench
from app.main import create_app
from app.prompts import example_prompt
from app.run import UPLOADED, attention_patterns, prepare
from app.views.attention import head_view, model_view
from app.views.inputs import input_view
from app.views.neuron import neuron
from rasp.compiler.compiler import compile_rasp
from rasp.parser import load
from tests.rasp.test_readout import PROGRAMS
from workbench import names
from workbench.errors import InputError


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name in ("vit-tiny-patch4-tiny", "itransformer-tiny"):
        workbench.checkpoint.save(workbench.build(name, seed=0), folder / name)
    program = load(str(PROGRAMS / "reverse.rasp")).output
    compile_rasp(program, set("abc"), 4, validation_budget=30).save(folder / "reverse")
    return create_app(models_dir=str(folder))


def png(pixels: np.ndarray) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_a_vision_model_shows_a_task_sample_and_an_upload(app) -> None:
    ckpt = app.registry.checkpoint("vit-tiny-patch4-tiny")
    assert example_prompt(ckpt) == "sample 0"
    patterns, prepared = attention_patterns(app.registry, "vit-tiny-patch4-tiny", "sample 3")
    assert prepared.labels[:2] == ["CLS", "r0c0"] and patterns.shape[-1] == 17
    click = {"points": [{"x": "H1", "y": "L1"}]}
    fig, _, _ = input_view(app.registry, "vit-tiny-patch4-tiny", "sample 3", click, "cls")
    overlay = next(t for t in fig.data if t.type == "heatmap")
    np.testing.assert_allclose(
        np.asarray(overlay.z, dtype=float).ravel(), patterns[1, 1, 0, 1:], atol=1e-6
    )
    # an upload: kept on the page at the model's size, shown when the prompt says so
    from app.inputs import compact_png

    big = np.zeros((64, 64), dtype=np.uint8)
    big[:, 24:40] = 255  # a vertical bar
    small = compact_png(png(big), ckpt.model.config)
    assert len(small) < 2_000  # a 16x16 PNG
    image = prepare(ckpt, UPLOADED, small).inputs
    assert image.shape == (1, ckpt.model.config.input.channels, 16, 16)
    assert image[0, 0, :, 7].min() > image[0, 0, :, 0].max()  # the bar survives, resized
    fig, _ = head_view(app.registry, "vit-tiny-patch4-tiny", UPLOADED, click, upload=small)
    assert fig.data[0].x[1] == "1:r0c0"
    with pytest.raises(InputError, match="no image is uploaded"):
        prepare(ckpt, UPLOADED, None)
    with pytest.raises(InputError, match="type sample N"):
        prepare(ckpt, "the cat", None)
    with pytest.raises(InputError, match="not a PNG"):
        compact_png("data:image/png;base64," + base64.b64encode(b"GIF89a...").decode(),
                    ckpt.model.config)  # fmt: skip
    rollout, _, _ = input_view(app.registry, "vit-tiny-patch4-tiny", "sample 3", click, "rollout")
    assert "rollout through layer 1" in rollout.layout.title.text


def test_a_series_model_shows_variate_mixing(app) -> None:
    patterns, prepared = attention_patterns(app.registry, "itransformer-tiny", "sample 0")
    click = {"points": [{"x": "H2", "y": "L0"}]}
    fig, _, note = input_view(app.registry, "itransformer-tiny", "sample 0", click)
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), patterns[0, 2], atol=1e-6)
    assert "variate x variate" in note and list(fig.data[0].x) == prepared.labels
    view = model_view(app.registry, "itransformer-tiny", "sample 0", "entropy")
    assert np.asarray(view.data[0].z, dtype=float).shape == patterns.shape[:2]


def test_a_compiled_rasp_program_names_its_heads_and_decodes_its_residual(app) -> None:
    ckpt = app.registry.checkpoint("reverse")
    prompt = example_prompt(ckpt)
    assert prompt.split()[0] == "BOS"
    table, heads, _ = input_view(app.registry, "reverse", "BOS a b c", None)
    cells = " ".join(str(c) for column in table.data[0].cells.values for c in column)
    assert "reverse:c" in cells and "reverse:a" in cells  # the output s-op, decoded
    assert "select(" in " ".join(str(c) for col in heads.data[0].cells.values for c in col)
    from rasp.readout import rasp_labels

    labels = rasp_labels(ckpt)
    layer, head = next(
        (lr, h) for lr, row in enumerate(labels.heads) for h, role in enumerate(row) if role
    )
    click = {"points": [{"x": f"H{head}", "y": f"L{layer}"}]}
    fig, _ = head_view(app.registry, "reverse", "BOS a b c", click)
    assert fig.layout.title.text == f"head L{layer}H{head}: {labels.head_name(layer, head)}"


@pytest.mark.parametrize(
    ("model", "prompt"),
    [
        ("induction-2l", "BOS t1 t2 t3 t1 t2"),
        ("vit-tiny-patch4-tiny", "sample 1"),
        ("itransformer-tiny", "sample 1"),
        ("reverse", "BOS c a b"),
    ],
)
def test_the_neuron_views_scores_are_the_models_pre_softmax_scores(app, model, prompt) -> None:
    ckpt = app.registry.checkpoint(model)
    prepared = prepare(ckpt, prompt)
    layer = ckpt.model.config.n_layers - 1
    with torch.no_grad():
        _, cache = ckpt.model.run_with_cache(
            prepared.inputs, names_filter=[names.attn_scores(layer)]
        )
    head = min(1, ckpt.model.config.n_heads - 1)
    scores = cache[names.attn_scores(layer)][0, head]
    click = {"points": [{"x": f"H{head}", "y": f"L{layer}"}]}
    query = 2
    fig = neuron(app.registry, model, prompt, click, {"points": [{"y": f"{query}:x", "z": 0}]})
    terms = next(t for t in fig.data if t.name == "terms")
    total = np.asarray([np.nan if v is None else v for v in terms.z[-1]], dtype=float)
    expected = scores[query].double().numpy()
    shown = np.isfinite(expected)
    np.testing.assert_allclose(total[shown], expected[shown], rtol=1e-5, atol=1e-5)
    assert np.isnan(total[~shown]).all()  # masked keys blank
    assert f"query {query}:" in fig.layout.title.text
