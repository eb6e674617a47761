"""Components against implementations outside this repo (Hugging Face transformers), which the
real checkpoints of issue-4 families were trained with."""

from __future__ import annotations

import pytest
import torch
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.configuration_llama import LlamaConfig
from transformers.models.llama.modeling_llama import (
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

from workbench.components.norm import RMSNorm
from workbench.components.positional import alibi_slopes, apply_rotary, rotary_angles, t5_buckets
from workbench.config import ModelConfig, Norm


def test_rotary_matches_hugging_face_llama(gen: torch.Generator) -> None:
    n, heads, d_head = 10, 3, 16
    cfg = LlamaConfig(hidden_size=heads * d_head, num_attention_heads=heads, rope_theta=10000.0)
    rope = LlamaRotaryEmbedding(cfg)
    q = torch.randn(2, heads, n, d_head, generator=gen)  # HF layout [batch, head, pos, d_head]
    k = torch.randn(2, heads, n, d_head, generator=gen)
    cos, sin = rope(q, torch.arange(n)[None])
    hf_q, hf_k = apply_rotary_pos_emb(q, k, cos, sin)
    ours_cos, ours_sin = rotary_angles(n, d_head, 10000.0)
    ours_q = apply_rotary(q.transpose(1, 2), ours_cos, ours_sin).transpose(1, 2)
    ours_k = apply_rotary(k.transpose(1, 2), ours_cos, ours_sin).transpose(1, 2)
    torch.testing.assert_close(ours_q, hf_q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_k, hf_k, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_heads", [8, 12, 16, 5])
def test_alibi_slopes_match_hugging_face_bloom(n_heads: int) -> None:
    alibi = build_alibi_tensor(torch.ones(1, 6), n_heads, torch.float32)  # [heads, 1, pos]
    # BLOOM stores slope * key position; its position 1 entry is the slope itself
    torch.testing.assert_close(alibi[:, 0, 1], alibi_slopes(n_heads))


def test_rmsnorm_matches_hugging_face_llama(gen: torch.Generator) -> None:
    cfg = ModelConfig(
        n_layers=1,
        d_model=24,
        n_heads=2,
        d_head=12,
        d_vocab=5,
        n_ctx=4,
        norm=Norm.RMSNORM,
        norm_eps=1e-6,
        d_mlp=8,
    )
    ours, theirs = RMSNorm(cfg), LlamaRMSNorm(24, eps=1e-6)
    weight = torch.randn(24, generator=gen)
    ours.w.data.copy_(weight)
    theirs.weight.data.copy_(weight)
    x = torch.randn(3, 4, 24, generator=gen)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("n_buckets", "max_distance"), [(32, 128), (8, 20)])
def test_t5_buckets_match_hugging_face_t5(
    bidirectional: bool, n_buckets: int, max_distance: int
) -> None:
    from transformers.models.t5.modeling_t5 import T5Attention

    n = 300  # reaches past max_distance in both directions
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # key - query, as T5
    theirs = T5Attention._relative_position_bucket(offset, bidirectional, n_buckets, max_distance)
    ours = t5_buckets(n, n, bidirectional, n_buckets, max_distance)
    assert torch.equal(ours, theirs)
