"""Position/context decomposition: the identities hold exactly, streaming equals the direct
computation, and a synthetic spiral plus clusters is recovered (Song & Zhong 2023)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import workbench
from probes.decompose import decompose, decompose_states
from workbench.cli import cli
from workbench.errors import InputError


def test_streaming_equals_the_direct_decomposition() -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=2, seed=0)
    contexts = torch.randint(
        0, model.config.d_vocab, (23, 7), generator=torch.Generator().manual_seed(0)
    )
    result = decompose(model, contexts, site="resid_post", batch_size=5)
    for geometry in result.layers:
        # like with like: the same batches caching the same one site (a full run_with_cache
        # takes the unfused paths and rounds differently on some CPUs)
        hook = f"blocks.{geometry.layer}.hook_resid_post"
        h = np.concatenate(
            [
                model.run_with_cache(contexts[lo : lo + 5], names_filter=[hook])[1][hook].numpy()
                for lo in range(0, len(contexts), 5)
            ]
        ).astype(np.float64)  # [C, T, d]
        mean = h.mean(axis=(0, 1))
        pos = h.mean(axis=0) - mean
        ctx = h.mean(axis=1) - mean
        resid = h - mean - pos[None] - ctx[:, None]
        np.testing.assert_allclose(pos.sum(axis=0), 0, atol=1e-9)  # the identities
        np.testing.assert_allclose(ctx.sum(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(h, mean + pos[None] + ctx[:, None] + resid, atol=1e-12)
        total = np.square(h - mean).sum()
        share = geometry.share
        assert share["position"] == pytest.approx(h.shape[0] * np.square(pos).sum() / total)
        assert share["context"] == pytest.approx(h.shape[1] * np.square(ctx).sum() / total)
        assert share["residual"] == pytest.approx(np.square(resid).sum() / total, abs=1e-9)
        assert sum(share.values()) == pytest.approx(1.0)


def test_a_spiral_and_clusters_are_recovered() -> None:
    rng = np.random.default_rng(0)
    d, n_pos, n_ctx = 32, 40, 60
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    angle = 2 * np.pi * np.arange(n_pos) / n_pos
    spiral = 5 * (np.cos(angle)[:, None] * basis[:, 0] + np.sin(angle)[:, None] * basis[:, 1])
    labels = rng.integers(0, 3, n_ctx)
    centres = 4 * basis[:, 2:5].T
    h = spiral[None] + centres[labels][:, None, :] + 0.1 * rng.normal(size=(n_ctx, n_pos, d))
    g = decompose_states((h[i : i + 16] for i in range(0, n_ctx, 16)), labels=labels)
    assert g.pos_rank == 2 and sum(g.pos_explained[:2]) > 0.99  # a plane
    radius = np.linalg.norm(np.array(g.pos_pca)[:, :2], axis=1)
    assert radius.min() > 4.8 and radius.max() < 5.2  # a circle of radius 5
    assert g.pos_smoothness > 0.95
    assert g.ctx_ari == pytest.approx(1.0)
    assert max(g.cosines) < 0.05  # position and context are orthogonal
    assert g.share["residual"] < 0.02


def test_bad_input_is_refused() -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=1)
    contexts = torch.randint(0, model.config.d_vocab, (4, 5))
    with pytest.raises(InputError, match="at least 2 contexts|n_contexts >= 2"):
        decompose(model, contexts[:1])
    with pytest.raises(InputError, match="unknown site"):
        decompose(model, contexts, site="nowhere")
    with pytest.raises(InputError, match="labels has 3 entries"):
        decompose(model, contexts, labels=np.array([0, 1, 0]))
    with pytest.raises(InputError, match="out of range"):
        decompose(model, contexts, layers=[3])


def test_decompose_cli() -> None:
    result = CliRunner().invoke(
        cli, ["decompose", "--model", "induction-2l", "--n-prompts", "32", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_contexts"] == 32 and len(report["layers"]) == 2
    for layer in report["layers"]:
        assert sum(layer["share"].values()) == pytest.approx(1.0)
