"""Typed options (workbench.options): the three spellings of a choice, old flat configs,
per-layer overrides and the hybrids built from them, and Sinkhorn attention."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import workbench
from workbench import names
from workbench.components.activations.base import Activation
from workbench.config import ModelConfig
from workbench.errors import ConfigError
from workbench.options import Delta, Rotary, Sinkhorn, Softmax, TopK
from workbench.options.mlp import MLPKind
from workbench.presets import get_preset

BASE = get_preset("gpt2-small-tiny").config


def test_a_choice_is_a_member_its_kind_string_or_a_dict() -> None:
    typed = BASE.replace(pos=Rotary(dim=4, base=500.0))
    assert BASE.replace(pos={"kind": "rotary", "dim": 4, "base": 500}) == typed
    assert BASE.replace(pos="rotary").pos == Rotary()
    assert BASE.replace(pos="rotary").replace(**{"pos.dim": 4, "pos.base": 500.0}) == typed
    assert ModelConfig.from_dict(typed.to_dict()) == typed
    assert typed.to_dict()["pos"] == {"kind": "rotary", "dim": 4, "base": 500.0}
    assert typed.to_dict()["attention"] == "softmax"  # no parameters: the kind alone


def test_an_old_flat_config_loads_as_the_same_model() -> None:
    # the layout of checkpoints written before the typed options (flat option parameters)
    old = {
        **{k: v for k, v in get_preset("pythia-160m-tiny").config.to_dict().items()},
        "pos": "rotary",
        "rotary_dim": 4,
        "rotary_base": 10000.0,
        "mlp_top_k": None,  # unused defaults of options not chosen are dropped
        "kan_groups": 8,
        "clip_gamma": -0.03,
        "symmetric_qk": False,
    }
    assert ModelConfig.from_dict(old) == get_preset("pythia-160m-tiny").config
    shared = ModelConfig.from_dict({**BASE.to_dict(), "symmetric_qk": True})
    assert shared.qk_form.value == "shared"
    with pytest.raises(ConfigError, match="rotary_base is now a parameter of pos"):
        ModelConfig(**{**BASE.to_dict(), "rotary_base": 5.0})


def test_layer_overrides_build_each_layer_from_its_own_config() -> None:
    cfg = get_preset("deltanet-swa-small-tiny").config
    model = workbench.build(cfg, seed=1)
    assert [type(b.attn.kind) for b in model.blocks] == [Delta, Softmax, Delta, Softmax]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    tokens = torch.randint(0, cfg.d_vocab, (1, 12), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    window = cfg.layer(1).window
    pattern = cache[names.attn_pattern(1)][0]
    far = torch.ones(12, 12).tril(-window).bool()  # keys `window` or more positions back
    assert window == 4 and (pattern[:, far] == 0).all()
    assert (cache[names.attn_pattern(0)][0][:, far] != 0).any()  # DeltaNet mixes them
    assert names.attn(1, "rot_q") in cache and names.attn(0, "rot_q") not in cache


def test_bad_layer_overrides_are_refused_with_the_fix() -> None:
    for layers, message in [
        ([{"at": [9], "window": 3}], r"layers\[0\].at names layer 9; .* layers 0..1"),
        ([{"at": [0], "window": 3}, {"at": 0, "mlp": "relu"}], "layer 0 is overridden twice"),
        ([{"at": [0], "pos": "sinusoidal"}], "only positions that attention applies"),
        ([{"at": [0], "d_model": 8}], "'d_model' cannot change per layer"),
        ([{"at": [0]}], "changes nothing"),
        ([{"window": 3}], "must be a dict with 'at'"),
        ([{"at": [0], "attention": "delta", "window": 3}], "delta.* no window"),
    ]:
        with pytest.raises(ConfigError, match=message):
            BASE.replace(layers=layers)


def test_hybrid_tiny_twins_keep_their_overrides() -> None:
    tiny = get_preset("masformer-small-tiny").config
    assert [c.window for c in tiny.layer_configs] == [None, None, None, 4]
    assert get_preset("deltanet-global-small-tiny").config.layer(1).attention == Softmax()
    assert get_preset("topk-small-tiny").config.mlp == TopK(k=8)


def _with(model: workbench.Transformer, iterations: int) -> workbench.Transformer:
    """`model`'s weights under Sinkhorn attention with `iterations`."""
    other = workbench.Transformer(model.config.replace(attention=Sinkhorn(iterations=iterations)))
    other.load_state_dict(model.state_dict())
    return other.eval()


def _sharp_sinkformer(iterations: int) -> workbench.Transformer:
    """A sinkformer whose patterns are far from doubly stochastic after one iteration."""
    model = workbench.build("sinkformer-patch4-tiny", seed=2)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_Q.mul_(8.0)
            block.attn.W_K.mul_(8.0)
    return _with(model, iterations)


def test_sinkhorn_rows_sum_to_one_and_columns_converge() -> None:
    images = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    errors = []
    for iterations in (1, 3, 11, 61):  # odd: the last normalisation is the rows'
        _, cache = _sharp_sinkformer(iterations).run_with_cache(images)
        pattern = cache[names.attn_pattern(1)]
        torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
        errors.append(float((pattern.sum(-2) - 1).abs().max()))
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.1
    assert errors[-1] < 1e-3  # doubly stochastic (Sander et al. 2022)


def test_one_sinkhorn_iteration_is_softmax_attention() -> None:
    images = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    one = {"kind": "sinkhorn", "iterations": 1}
    sink = workbench.build("sinkformer-patch4-tiny", seed=5, attention=one)
    plain = workbench.build("sinkformer-patch4-tiny", seed=5, attention="softmax")
    assert torch.equal(sink(images), plain(images))


def test_sinkhorn_of_symmetric_scores_is_symmetric() -> None:
    # Sinkhorn's theorem: a symmetric positive matrix scales to a symmetric doubly stochastic one
    model = _with(workbench.build("sinkformer-patch4-tiny", seed=6, qk_form="shared"), 80)
    images = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    _, cache = model.run_with_cache(images)
    pattern = cache[names.attn_pattern(0)][0]
    torch.testing.assert_close(pattern, pattern.transpose(-1, -2), atol=1e-4, rtol=1e-4)


def test_sinkhorn_needs_a_bidirectional_mask() -> None:
    with pytest.raises(ConfigError, match="set mask='bidirectional'"):
        BASE.replace(attention="sinkhorn")


def test_sinkhorn_counts_iterations_as_the_sinkformers_code() -> None:
    # the authors' attention (michaelsdr/sinkformers, vit_pytorch): dual potentials u, v
    # updated in turn, u on even steps (rows) and v on odd ones (columns), uniform marginals
    # 1/n, eps = 1, the plan exp(S + u + v) scaled by n; max_iter steps in all
    from workbench.components.mixers.sinkhorn import sinkhorn

    scores = torch.randn(3, 7, 7, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    n = scores.shape[-1]
    for max_iter in range(1, 8):
        u, v = torch.zeros(3, n, 1, dtype=torch.float64), torch.zeros(3, 1, n, dtype=torch.float64)
        for step in range(max_iter):
            if step % 2 == 0:
                u = -math.log(n) - (scores + v).logsumexp(-1, keepdim=True)
            else:
                v = -math.log(n) - (scores + u).logsumexp(-2, keepdim=True)
        theirs = (scores + u + v).exp() * n
        ours = sinkhorn(scores.softmax(-1), max_iter)
        torch.testing.assert_close(ours, theirs)


@pytest.fixture
def squared_relu():
    """A new MLP kind added the one-class way, in this test only: squared ReLU (So et al.
    2021, "Primer"), its option class and its activation, nothing else."""

    class Squared(Activation):
        def hidden(self, mlp, x):
            return torch.relu(mlp.hook_pre(mlp.project_in(x))) ** 2

    @dataclass(frozen=True, kw_only=True)
    class SquaredRelu(MLPKind):
        KIND: ClassVar[str] = "squared_relu"

        def component(self, cfg):
            return Squared()

    yield SquaredRelu
    del MLPKind.members["squared_relu"]


def test_a_new_mlp_kind_is_one_option_class_and_its_activation(squared_relu) -> None:
    model = workbench.build("gpt2-small-tiny", mlp="squared_relu", seed=0)
    tokens = torch.randint(0, model.config.d_vocab, (2, 6))
    _, cache = model.run_with_cache(tokens)
    mlp = model.block(0).mlp
    assert mlp is not None
    x = model.blocks[0].ln2(cache[names.resid_mid(0)])  # a pre-norm block's MLP input
    pre = x @ mlp.W_in + mlp.b_in
    torch.testing.assert_close(cache[names.mlp(0, "pre")], pre)
    torch.testing.assert_close(cache[names.mlp_post(0)], torch.relu(pre) ** 2)
    out = torch.relu(pre) ** 2 @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(cache[names.mlp_out(0)], out)


def test_embedded_positions_and_inputs_come_from_their_options() -> None:
    from workbench.components.embed import ModuleEmbedding, TokenEmbedding
    from workbench.components.positions.embedded import (
        AbacusPositions,
        EmbeddedPositions,
        TablePositions,
    )

    expect = {
        "gpt2-small-tiny": (TokenEmbedding, TablePositions),
        "vaswani-base-tiny": (TokenEmbedding, TablePositions),
        "abacus-small-tiny": (TokenEmbedding, AbacusPositions),
        "llama-7b-tiny": (TokenEmbedding, EmbeddedPositions),
        "vit-tiny-patch4-tiny": (ModuleEmbedding, TablePositions),
    }
    for preset, (inputs, positions) in expect.items():
        model = workbench.build(preset, seed=0)
        assert type(model.inputs) is inputs, preset
        assert type(model.embedded_positions) is positions, preset
        assert hasattr(model, "W_pos") == (positions is not EmbeddedPositions), preset
    sinusoidal = workbench.build("vaswani-base-tiny", seed=0)
    assert "W_pos" not in dict(sinusoidal.named_parameters())  # a fixed table, a buffer
