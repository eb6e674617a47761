"""Every view works on every preset's tiny twin (every attention kind, position scheme, block
wiring and input kind), offered as a checkpoint the way a user offers one (--models-dir)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from app.main import create_app
from app.run import attention_patterns
from app.views.attention import head_view, model_view, token_view
from app.views.inputs import input_view
from app.views.neuron import neuron
from app.views.predictions import predictions
from tests.conftest import tiny_presets
from workbench.options import Tokens
from workbench.presets import get_preset

TEXT = [n for n in tiny_presets() if isinstance(get_preset(n).config.input, Tokens)]
OTHER = [n for n in tiny_presets() if n not in TEXT]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    for name in tiny_presets():
        model = workbench.build(name, seed=0)
        with torch.no_grad():  # biases and norm weights away from their initial values
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        workbench.checkpoint.save(model, folder / name)
    return create_app(models_dir=str(folder))


def prompt_for(name: str) -> str:
    n = min(7, get_preset(name).config.n_ctx)
    vocab = get_preset(name).config.d_vocab
    return " ".join(str((3 * i + 1) % vocab) for i in range(n))


@pytest.mark.parametrize("name", TEXT)
def test_every_view_works_on_every_text_model(app, name: str) -> None:
    prompt = prompt_for(name)
    patterns, prepared = attention_patterns(app.registry, name, prompt)
    ids = prepared.ids
    n_layers, n_heads, n = patterns.shape[:3]
    view = model_view(app.registry, name, prompt, "entropy")
    assert np.asarray(view.data[0].z, dtype=float).shape == (n_layers, n_heads)
    click = {"points": [{"x": f"H{n_heads - 1}", "y": f"L{n_layers - 1}"}]}
    fig, _ = head_view(app.registry, name, prompt, click)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), patterns[-1, -1], atol=1e-6)
    for mode in ("average", "overlay"):
        for style in ("matrix", "lines"):
            assert head_view(app.registry, name, prompt, click, mode, style)[0].data
    assert token_view(app.registry, name, prompt, click, None).data[0].z.shape == (
        n_heads + 1,
        n,
    )
    terms = neuron(app.registry, name, prompt, click, None)  # the last query
    assert f"query {n - 1}:" in terms.layout.title.text
    shown = next(t for t in terms.data if t.name == "pattern").y
    np.testing.assert_allclose(np.asarray(shown, dtype=float), patterns[-1, -1, -1], atol=1e-5)
    top, lens, dla, note = predictions(app.registry, name, prompt, 3)
    assert len(top.data[0].text) == n and np.asarray(lens.data[0].z).shape[1] == n
    model = app.registry.checkpoint(name).model
    with torch.no_grad():
        best = float(model(torch.tensor([ids]))[0, -1].max())  # the default answer's logit
    if name == "bert-base-tiny":  # its masked-LM head is not linear: a message, no bars
        assert "not a sum" in dla.layout.annotations[0].text
    else:
        bars = sum(float(sum(t.y)) for t in dla.data if t.type == "bar")
        assert bars == pytest.approx(best, abs=1e-3), note


@pytest.mark.parametrize("name", OTHER)
def test_every_view_works_on_every_image_and_series_model(app, name: str) -> None:
    patterns, prepared = attention_patterns(app.registry, name, "sample 2")
    n_layers, n_heads, n = patterns.shape[:3]
    assert len(prepared.labels) == n
    view = model_view(app.registry, name, "sample 2", "first_token")
    assert np.asarray(view.data[0].z, dtype=float).shape == (n_layers, n_heads)
    click = {"points": [{"x": f"H{n_heads - 1}", "y": f"L{n_layers - 1}"}]}
    fig, _ = head_view(app.registry, name, "sample 2", click)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), patterns[-1, -1], atol=1e-6)
    assert token_view(app.registry, name, "sample 2", click, None).data
    terms = neuron(app.registry, name, "sample 2", click, None)  # the last query
    shown = next(t for t in terms.data if t.name == "pattern").y
    np.testing.assert_allclose(np.asarray(shown, dtype=float), patterns[-1, -1, -1], atol=1e-5)
    shown, _, _ = input_view(app.registry, name, "sample 2", click)
    assert shown.data and shown.layout.title.text
