"""Gated linear attention (Yang et al. 2024, "Gated Linear Attention Transformers with
Hardware-Efficient Training"): S_t = diag(alpha_t) S_(t-1) + k_t v_t^T, o_t = S_t^T q_t, so
o_t = sum_j A_tj v_j with A_tj = sum_e q_te k_je prod_(l in (j, t]) alpha_le. The parallel form
holds [batch, head, query, key, d_head]: meant for analysis lengths."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.components.mixers.base import Hidden, Mixer, Pattern

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs


class GatedLinearMixer(Mixer):
    def install(self, attn: Attention) -> None:
        d, h, dh = attn.d_model, attn.n_heads, attn.d_head
        attn.W_alpha = nn.Parameter(torch.empty(d, h, dh))
        attn.b_alpha = nn.Parameter(torch.full((h, dh), 3.0))  # start near alpha = 1
        attn.hook_decay = HookPoint("batch", "pos", "head", "d_head")

    def mix(self, attn: Attention, q: Tensor, k: Tensor, x: Inputs, hidden: Hidden) -> Pattern:
        from workbench.components.attention import per_head

        logits = per_head(x, attn.W_alpha.transpose(0, 1)) + attn.b_alpha
        alpha = attn.hook_decay(torch.sigmoid(logits) ** (1 / 16))  # tau = 16, as the paper
        cum = torch.log(alpha).cumsum(dim=1)  # [batch, pos, head, d_head]
        n = q.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        decay = (cum[:, :, None] - cum[:, None, :]).masked_fill(
            ~causal[None, :, :, None, None], -torch.inf
        )
        kernel = torch.einsum("bqhe,bkhe,bqkhe->bhqk", q, k, decay.exp())
        return attn.hook_attn_scores(kernel)  # GLA has no normaliser: scores = pattern
