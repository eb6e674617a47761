"""Model-level weights through the lens (issue 20): equal to TransformerLens's
`TransformerBridge` on the same Hugging Face files, and to the blocks' own parameters."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench.errors import InputError
from workbench.lens import HookedTransformer

NAMES = ["W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"]
NAMES += ["W_in", "b_in", "W_out", "b_out", "W_U", "b_U", "W_E", "W_pos", "W_E_pos"]


def test_weights_equal_transformerlens(pair) -> None:
    ours, bridge = pair
    for name in NAMES:
        mine, theirs = getattr(ours, name), getattr(bridge, name).detach()
        assert mine.shape == theirs.shape, name
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-6, msg=name)
    for circuit in ("QK", "OV"):
        mine, theirs = getattr(ours, circuit), getattr(bridge, circuit)
        torch.testing.assert_close(mine.AB, theirs.AB.detach(), atol=1e-5, rtol=1e-5)
    labels = bridge.all_head_labels
    labels = labels() if callable(labels) else labels  # TL 3: a method; TL 4: a property
    assert ours.all_head_labels == labels and ours.all_head_labels() == labels


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_composition_scores_equal_transformerlens_and_the_definition(pair, mode) -> None:
    ours, bridge = pair
    mine = ours.all_composition_scores(mode)
    theirs = bridge.all_composition_scores(mode)
    theirs = getattr(theirs, "scores", theirs).detach()  # TL 4 wraps the tensor
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    ov, qk = ours.OV.AB, ours.QK.AB  # [layer, head, d_model, d_model]
    right = {"Q": qk, "K": qk.transpose(-2, -1), "V": ov}[mode]
    n_layers, n_heads = ov.shape[:2]
    for l1 in range(n_layers):
        for h1 in range(n_heads):
            for l2 in range(n_layers):
                for h2 in range(n_heads):
                    a, b = ov[l1, h1], right[l2, h2]
                    want = (a @ b).norm() / a.norm() / b.norm() if l1 < l2 else torch.tensor(0.0)
                    torch.testing.assert_close(mine[l1, h1, l2, h2], want, atol=1e-5, rtol=1e-4)


def test_grouped_keys_and_values_repeat_to_every_query_head() -> None:
    lens = HookedTransformer.from_model(workbench.build("llama2-70b-tiny", seed=0))
    attn = lens.block(0).attn
    group = lens.config.n_heads // lens.config.kv_heads
    assert group > 1
    for h in range(lens.config.n_heads):
        torch.testing.assert_close(lens.W_K[0, h], attn.W_K[h // group])
        torch.testing.assert_close(lens.W_V[0, h], attn.W_V[h // group])
    torch.testing.assert_close(lens.QK.AB[0], attn.qk_matrix())


def test_tied_and_missing_weights() -> None:
    tied = HookedTransformer.from_model(workbench.build("gemma-2b-tiny", seed=0))
    assert tied.config.tied_embeddings
    torch.testing.assert_close(tied.W_U, tied.W_E.T)
    untied = HookedTransformer.from_model(workbench.build("llama-7b-tiny", seed=0))
    assert not untied.config.tied_embeddings
    assert untied.W_U is untied.unembed_matrix  # the parameter itself, not a copy
    collapsed = HookedTransformer.from_model(workbench.build("collapsed-qk-small-tiny", seed=0))
    with pytest.raises(InputError, match="W_Q is not defined"):
        _ = collapsed.W_Q
    attn_only = HookedTransformer.from_model(workbench.build("attn-only-2l-tiny", seed=0))
    with pytest.raises(InputError, match="no MLP"):
        _ = attn_only.W_in
    rotary = HookedTransformer.from_model(workbench.build("llama-7b-tiny", seed=0))
    with pytest.raises(InputError, match="W_E_pos needs a table of positions"):
        _ = rotary.W_E_pos


def test_transformerlens_module_paths_and_state_dict() -> None:
    lens = HookedTransformer.from_model(workbench.build("llama2-70b-tiny", seed=0))
    assert lens.embed.W_E is lens.W_E and lens.unembed.b_U is lens.b_U
    with pytest.raises(InputError, match="no table of positions"):
        _ = lens.pos_embed
    state = lens.tl_state_dict()
    assert state["embed.W_E"] is lens.W_E and "unembed.W_U" in state
    assert "blocks.0.attn._W_K" in state and "blocks.0.attn.W_K" not in state  # grouped
    assert state["blocks.1.mlp.W_gate"].shape == (lens.cfg.d_model, lens.cfg.d_mlp)
    gpt2 = HookedTransformer.from_model(workbench.build("gpt2-small-tiny", seed=0))
    assert gpt2.pos_embed.W_pos is gpt2.W_pos
    assert "pos_embed.W_pos" in gpt2.tl_state_dict()
    with pytest.raises(InputError, match="no HookedTransformer"):
        HookedTransformer.from_model(workbench.build("dual-stream-small-tiny")).tl_state_dict()
