"""Attention rollout (Abnar & Zuidema 2020) and the class token's attention over patches:
a hand-computed case, properties, a second route (identical layers: a matrix power), and the
patches of a vision model."""

from __future__ import annotations

import json

import pytest
import torch

from probes.rollout import attention_rollout, input_patterns, patch_attention
from workbench.api import build
from workbench.errors import InputError


def _softmax_patterns(gen, layers=3, heads=4, n=6, causal=False) -> torch.Tensor:
    scores = torch.randn(layers, heads, n, n, generator=gen, dtype=torch.float64)
    if causal:
        scores = scores.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))
    return scores.softmax(-1)


def test_a_hand_computed_rollout() -> None:
    # layer 0: heads [[1,0],[1,0]] and [[1,0],[0,1]] -> mean [[1,0],[.5,.5]]
    #   A'0 = .5 mean + .5 I = [[1, 0], [.25, .75]]
    # layer 1: both heads [[0,1],[0,1]] -> A'1 = [[.5, .5], [0, 1]]
    # rollout = A'1 A'0 = [[.625, .375], [.25, .75]]
    patterns = torch.tensor(
        [
            [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]],
            [[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]],
        ]
    )
    flow = attention_rollout(patterns).flow
    assert flow[0].tolist() == [[1.0, 0.0], [0.25, 0.75]]
    assert flow[1].tolist() == [[0.625, 0.375], [0.25, 0.75]]


def test_rows_are_distributions_and_identity_attention_rolls_out_to_identity(gen) -> None:
    flow = attention_rollout(_softmax_patterns(gen)).flow
    assert flow.dtype == torch.float64 and bool((flow >= 0).all())
    assert torch.allclose(flow.sum(-1), torch.ones(3, 6, dtype=torch.float64))
    identity = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.equal(attention_rollout(identity).flow, torch.eye(5).expand(2, 5, 5).double())


def test_causal_attention_rolls_out_to_a_lower_triangular_flow(gen) -> None:
    flow = attention_rollout(_softmax_patterns(gen, causal=True)).flow
    assert torch.equal(flow, flow.tril())


def test_identical_layers_roll_out_to_a_matrix_power(gen) -> None:
    one = _softmax_patterns(gen, layers=1)
    patterns = one.expand(4, -1, -1, -1)
    step = 0.5 * one[0].mean(0) + 0.5 * torch.eye(6, dtype=torch.float64)
    flow = attention_rollout(patterns).flow
    for layer in range(4):
        assert torch.allclose(flow[layer], torch.linalg.matrix_power(step, layer + 1))


def test_the_residual_share_bounds(gen) -> None:
    patterns = _softmax_patterns(gen, layers=2)
    assert torch.allclose(
        attention_rollout(patterns, residual=1.0).flow[-1], torch.eye(6, dtype=torch.float64)
    )
    means = patterns.mean(1)
    assert torch.allclose(attention_rollout(patterns, residual=0.0).flow[-1], means[1] @ means[0])
    with pytest.raises(InputError, match="0..1"):
        attention_rollout(patterns, residual=1.5)


def test_signed_mixing_rolls_out_its_absolute_weights(gen) -> None:
    patterns = _softmax_patterns(gen, layers=2)
    signs = torch.where(torch.rand(patterns.shape, generator=gen) < 0.3, -1.0, 1.0).double()
    signed = attention_rollout(patterns * signs * 3.0)  # rows no longer sum to 1
    assert signed.signed and not attention_rollout(patterns).signed
    assert torch.allclose(signed.flow, attention_rollout(patterns).flow)


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(InputError, match=r"\[layer, head, pos, pos\]"):
        attention_rollout(torch.ones(2, 3, 4))
    with pytest.raises(InputError, match="NaN"):
        attention_rollout(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(InputError, match="4x4 patches"):
        patch_attention(torch.ones(1, 1, 5, 5), 4)


@pytest.mark.parametrize("preset", ["vit-tiny-patch4-tiny", "poolformer-patch4-tiny"])
def test_the_class_tokens_attention_over_a_vision_models_patches(preset, gen) -> None:
    model = build(preset, seed=1)
    image = torch.randn(1, 1, 16, 16, generator=gen)
    patterns = input_patterns(model, image)
    _, cache = model.run_with_cache(image)
    assert torch.allclose(patterns[1], cache["blocks.1.attn.hook_pattern"][0], atol=1e-6)
    found = patch_attention(patterns, 4)
    assert found.heads.shape == (2, 4, 16) and found.rollout.shape == (2, 16)
    assert found.grid(1, 2)[3, 1] == patterns[1, 2, 0, 1 + 3 * 4 + 1].double()
    flow = attention_rollout(patterns).flow
    assert torch.equal(found.grid(0), flow[0, 0, 1:].reshape(4, 4))
    # the class token's row: its own share plus the patches' shares is the whole row
    assert torch.allclose(found.rollout.sum(-1) + flow[:, 0, 0], torch.ones(2, dtype=torch.float64))
    assert found.signed == (preset.startswith("poolformer"))
    saved = json.loads(found.to_json())
    assert saved["side"] == 4 and saved["rollout"] == found.rollout.tolist()
    assert json.loads(attention_rollout(patterns).to_json())["flow"] == flow.tolist()
