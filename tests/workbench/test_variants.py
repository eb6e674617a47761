"""Variant components against their papers' formulas or slow, obviously correct references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench import names
from workbench.components.positional import t5_buckets
from workbench.errors import ConfigError


@pytest.mark.parametrize(
    ("kind", "act"), [("swiglu", F.silu), ("geglu", F.gelu), ("reglu", F.relu)]
)
def test_glu_family_matches_shazeer_formula(kind: str, act, gen: torch.Generator) -> None:
    model = workbench.build("gelu-2l-tiny", mlp=kind, seed=1)
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    _, cache = model.run_with_cache(tokens)
    mlp = model.blocks[0].mlp
    x = cache[names.norm_normalized(0, 2)]
    expected = (act(x @ mlp.W_gate) * (x @ mlp.W_in + mlp.b_in)) @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(cache[names.mlp_out(0)], expected, atol=1e-5, rtol=1e-5)


def test_top_k_mlp_keeps_exactly_the_k_largest_activations(gen: torch.Generator) -> None:
    model = workbench.build("gelu-2l-tiny", mlp="topk", mlp_top_k=5, seed=1)
    _, cache = model.run_with_cache(torch.randint(0, 50, (3, 9), generator=gen))
    pre, post = cache[names.mlp(0, "pre")], cache[names.mlp(0, "post")]
    relu = pre.clamp(min=0)
    kept = post != 0
    assert (kept.sum(-1) <= 5).all() and (kept.sum(-1) == 5).any()
    # every kept unit equals its ReLU; no dropped unit is larger than the smallest kept one
    torch.testing.assert_close(post[kept], relu[kept])
    smallest_kept = torch.where(kept, post, torch.inf).min(-1).values
    largest_dropped = torch.where(kept, -torch.inf, relu).max(-1).values
    assert (largest_dropped <= smallest_kept).all()
    with pytest.raises(ConfigError, match="mlp_top_k"):
        workbench.build("gelu-2l-tiny", mlp="topk")
    with pytest.raises(ConfigError, match="1..d_mlp"):
        workbench.build("gelu-2l-tiny", mlp="topk", mlp_top_k=65)


@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
def test_sliding_window_hides_far_keys(mask: str, gen: torch.Generator) -> None:
    model = workbench.build("gpt2-small-tiny", window=3, mask=mask, seed=1)
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 10), generator=gen))
    pattern = cache[names.attn_pattern(1)]
    q, k = torch.arange(10)[:, None], torch.arange(10)[None, :]
    visible = (q - k).abs() < 3
    if mask == "causal":
        visible &= k <= q
    assert (pattern[..., ~visible] == 0).all()
    assert (pattern[..., visible] > 0).all()
    # a window as long as the input is full attention
    full = workbench.build("gpt2-small-tiny", mask=mask, seed=1)
    wide = workbench.build("gpt2-small-tiny", mask=mask, window=10, seed=1)
    tokens = torch.randint(0, 50, (2, 10), generator=gen)
    torch.testing.assert_close(wide(tokens), full(tokens))


def test_t5_bias_adds_the_bucket_table_to_the_scores(gen: torch.Generator) -> None:
    model = workbench.build("t5-bias-small-tiny", seed=2)
    attn = model.blocks[0].attn
    tokens = torch.randint(0, 50, (1, 12), generator=gen)
    _, cache = model.run_with_cache(tokens)
    bias = cache[names.attn(0, "rel_bias")]
    buckets = t5_buckets(12, 12, False, attn.rel_bias.shape[0], attn.rel_max_distance)
    torch.testing.assert_close(bias, attn.rel_bias[buckets].permute(2, 0, 1))
    q, k = cache[names.attn(0, "q")], cache[names.attn(0, "k")]
    raw = torch.einsum("bqhe,bkhe->bhqk", q, k) / q.shape[-1] ** 0.5 + bias
    raw = raw.masked_fill(torch.ones(12, 12, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(cache[names.attn_scores(0)], raw, atol=1e-5, rtol=1e-5)
