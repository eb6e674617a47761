"""Biases on the softmax scores by relative position: ALiBi's fixed slope per head (Press et
al. 2022), T5's learned bias per log-bucketed distance (Raffel et al. 2020) and FIRE's MLP of
the log-normalised distance (Li et al. 2024)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.components.positional import FireBias, alibi_bias, alibi_slopes, t5_buckets
from workbench.components.positions.base import Positions, Scores
from workbench.options import T5Buckets

if TYPE_CHECKING:
    from workbench.components.attention import Attention


class AlibiPositions(Positions):
    def install(self, attn: Attention) -> None:
        attn.register_buffer("alibi_slopes", alibi_slopes(attn.n_heads), persistent=False)

    def score_bias(self, attn: Attention, scores: Scores, q: Tensor) -> Scores:
        nq, nk = scores.shape[-2:]
        return scores + alibi_bias(attn.alibi_slopes, nq, nk, attn.causal)


class T5Positions(Positions):
    def __init__(self, option: T5Buckets) -> None:
        self.option = option

    def install(self, attn: Attention) -> None:
        attn.rel_bias = nn.Parameter(torch.zeros(self.option.buckets, attn.n_heads))
        attn.rel_max_distance = self.option.max_distance
        attn.hook_rel_bias = HookPoint("head", "query_pos", "key_pos")

    def score_bias(self, attn: Attention, scores: Scores, q: Tensor) -> Scores:
        nq, nk = scores.shape[-2:]
        buckets = t5_buckets(
            nq, nk, not attn.causal, self.option.buckets, self.option.max_distance, scores.device
        )
        return scores + attn.hook_rel_bias(attn.rel_bias[buckets].permute(2, 0, 1))


class FirePositions(Positions):
    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx

    def install(self, attn: Attention) -> None:
        attn.fire = FireBias(attn.n_heads, self.n_ctx)
        attn.hook_rel_bias = HookPoint("head", "query_pos", "key_pos")

    def score_bias(self, attn: Attention, scores: Scores, q: Tensor) -> Scores:
        nq, nk = scores.shape[-2:]
        return scores + attn.hook_rel_bias(attn.fire(nq, nk))
