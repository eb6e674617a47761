"""Shaw et al. 2018, "Self-Attention with Relative Position Representations": learned
relative embeddings on keys and values, distances clipped to +-max_distance, one table per
layer shared by the heads, as in the paper. e_ij += q_i . w^K_clip(j - i) / sqrt(d_head),
z_i += sum_j a_ij w^V_clip(j - i)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.components.positions.base import Positions, Scores
from workbench.options import Shaw

if TYPE_CHECKING:
    from workbench.components.attention import Attention


class ShawPositions(Positions):
    def __init__(self, option: Shaw) -> None:
        self.max = option.max_distance

    def install(self, attn: Attention) -> None:
        attn.shaw_k = nn.Parameter(torch.zeros(2 * self.max + 1, attn.d_head))
        attn.shaw_v = nn.Parameter(torch.zeros(2 * self.max + 1, attn.d_head))
        attn.hook_rel_scores = HookPoint("batch", "head", "query_pos", "key_pos")
        attn.hook_rel_values = HookPoint("batch", "pos", "head", "d_head")

    def _index(self, nq: int, nk: int, device: torch.device) -> Tensor:
        offset = torch.arange(nk, device=device)[None, :] - torch.arange(nq, device=device)[:, None]
        return offset.clamp(-self.max, self.max) + self.max  # [query, key]

    def score_bias(self, attn: Attention, scores: Scores, q: Tensor) -> Scores:
        nq, nk = scores.shape[-2:]
        table = attn.shaw_k[self._index(nq, nk, scores.device)]  # [query, key, d_head]
        rel = torch.einsum("bqhe,qke->bhqk", q, table) / math.sqrt(attn.d_head)
        return scores + attn.hook_rel_scores(rel)

    def values(self, attn: Attention, pattern: Scores, z: Tensor) -> Tensor:
        table = attn.shaw_v[self._index(pattern.shape[-2], pattern.shape[-1], z.device)]
        return z + attn.hook_rel_values(torch.einsum("bhqk,qke->bqhe", pattern, table))
