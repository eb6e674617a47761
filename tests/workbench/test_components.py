"""Each component against an independent formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench.components.norm import LayerNorm, RMSNorm
from workbench.components.positional import (
    alibi_slopes,
    apply_rotary,
    rotary_angles,
    sinusoidal_table,
)
from workbench.config import Norm


def test_sinusoidal_table_matches_vaswani_formula() -> None:
    n, d = 50, 16
    table = sinusoidal_table(n, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("rotary_dim", [8, 4])
def test_rotary_equals_complex_multiplication(rotary_dim: int, gen: torch.Generator) -> None:
    n, d_head, base = 12, 8, 10000.0
    x = torch.randn(2, n, 3, d_head, generator=gen)
    cos, sin = rotary_angles(n, rotary_dim, base)
    out = apply_rotary(x, cos, sin)
    half = rotary_dim // 2
    z = torch.complex(x[..., :half].double(), x[..., half:rotary_dim].double())
    theta = base ** (-torch.arange(half, dtype=torch.float64) * 2 / rotary_dim)
    phase = torch.exp(1j * torch.arange(n, dtype=torch.float64)[:, None] * theta)  # [pos, half]
    rotated = z * phase[None, :, None, :]
    torch.testing.assert_close(out[..., :half].double(), rotated.real, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., half:rotary_dim].double(), rotated.imag, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., rotary_dim:], x[..., rotary_dim:])


def test_rotary_scores_depend_only_on_relative_position(gen: torch.Generator) -> None:
    q, k = torch.randn(1, 1, 1, 8, generator=gen), torch.randn(1, 1, 1, 8, generator=gen)
    cos, sin = rotary_angles(20, 8, 10000.0)

    def score(i: int, j: int) -> float:
        qi = apply_rotary(q, cos[i : i + 1], sin[i : i + 1])
        kj = apply_rotary(k, cos[j : j + 1], sin[j : j + 1])
        return float((qi * kj).sum())

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-5)


def test_alibi_slopes_for_8_and_12_heads() -> None:
    # Press et al. 2022: 8 heads -> 1/2, 1/4, ..., 1/256
    assert alibi_slopes(8).tolist() == pytest.approx([2.0**-k for k in range(1, 9)])
    # 12 heads: the 8-head slopes, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 (every other of 16 heads)
    expected = [2.0**-k for k in range(1, 9)] + [2.0 ** -(k + 0.5) for k in range(4)]
    assert alibi_slopes(12).tolist() == pytest.approx(expected)


def test_alibi_model_scores_carry_linear_distance_bias(gen: torch.Generator) -> None:
    model = workbench.build("bloom-560m-tiny")
    torch.nn.init.zeros_(model.blocks[0].attn.W_Q)  # q = 0: the scores are the bias alone
    tokens = torch.randint(0, 50, (1, 6), generator=gen)
    _, cache = model.run_with_cache(tokens)
    scores = cache["blocks.0.attn.hook_attn_scores"][0]
    slopes = alibi_slopes(4)
    for h in range(4):
        for q in range(6):
            for k in range(q + 1):
                assert scores[h, q, k].item() == pytest.approx(
                    -slopes[h].item() * (q - k), abs=1e-5
                )
            assert torch.isinf(scores[h, q, q + 1 :]).all()


def test_grouped_query_equals_multi_head_with_repeated_kv(gen: torch.Generator) -> None:
    gqa = workbench.build("mistral-7b-tiny", seed=3)  # 4 query heads, 2 KV heads
    mha = workbench.build("mistral-7b-tiny", n_kv_heads=None)
    state = gqa.state_dict()
    for key in list(state):
        if key.endswith(("W_K", "W_V", "b_K", "b_V")):
            state[key] = state[key].repeat_interleave(2, dim=0)
    mha.load_state_dict(state)
    tokens = torch.randint(0, 50, (2, 9), generator=gen)
    torch.testing.assert_close(gqa(tokens), mha(tokens), atol=1e-5, rtol=1e-5)


def test_multi_query_has_one_kv_head() -> None:
    model = workbench.build("falcon-7b-tiny")
    assert model.blocks[0].attn.W_K.shape[0] == 1
    assert model.blocks[0].attn.W_Q.shape[0] == 4


def test_layernorm_matches_definition(gen: torch.Generator) -> None:
    cfg = workbench.build("gpt2-small-tiny").config
    ln = LayerNorm(cfg)
    torch.nn.init.normal_(ln.w, generator=gen)
    torch.nn.init.normal_(ln.b, generator=gen)
    x = torch.randn(2, 5, cfg.d_model, generator=gen) * 3 + 1
    expected = F.layer_norm(x, (cfg.d_model,), ln.w, ln.b, cfg.norm_eps)
    torch.testing.assert_close(ln(x), expected, atol=1e-5, rtol=1e-5)


def test_rmsnorm_matches_definition(gen: torch.Generator) -> None:
    cfg = workbench.build("llama-7b-tiny").config
    assert cfg.norm is Norm.RMSNORM
    rms = RMSNorm(cfg)
    torch.nn.init.normal_(rms.w, generator=gen)
    x = torch.randn(2, 5, cfg.d_model, generator=gen, dtype=torch.float64)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + cfg.norm_eps) * rms.w.double()
    torch.testing.assert_close(rms.double()(x), expected)


def test_causal_mask_hides_the_future(gen: torch.Generator) -> None:
    model = workbench.build("gpt2-small-tiny")
    a = torch.randint(0, 50, (1, 8), generator=gen)
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 50
    torch.testing.assert_close(model(a)[0, :5], model(b)[0, :5])


def test_bidirectional_attention_sees_the_future(gen: torch.Generator) -> None:
    model = workbench.build("bert-base-tiny")
    a = torch.randint(0, 50, (1, 8), generator=gen)
    b = a.clone()
    b[0, 7] = (b[0, 7] + 1) % 50
    assert not torch.allclose(model(a)[0, 0], model(b)[0, 0])
