"""DeltaNet (Schlag et al. 2021; Yang et al. 2024, "Parallelizing Linear Transformers with the
Delta Rule over Sequence Length"): S_t = S_(t-1) + beta_t (v_t - S_(t-1) k_t) k_t^T,
o_t = S_t q_t, with unit q and k. Writing S_t = sum_j u_j k_j^T gives
(I + diag(beta) L) U = diag(beta) V with L_tj = k_t.k_j (j < t), so o = (M T) V with
M_tj = q_t.k_j (j <= t) and T = (I + diag(beta) L)^-1 diag(beta): M T is the token-mixing
matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.components.mixers.base import Hidden, Mixer, Pattern

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs


class DeltaMixer(Mixer):
    def install(self, attn: Attention) -> None:
        attn.W_beta = nn.Parameter(torch.empty(attn.d_model, attn.n_heads))
        attn.b_beta = nn.Parameter(torch.zeros(attn.n_heads))
        attn.hook_beta = HookPoint("batch", "pos", "head")

    def mix(self, attn: Attention, q: Tensor, k: Tensor, x: Inputs, hidden: Hidden) -> Pattern:
        from workbench.components.attention import gate_logits

        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = attn.hook_beta(torch.sigmoid(gate_logits(x, attn.W_beta) + attn.b_beta))
        beta = beta.transpose(1, 2)  # [batch, head, pos]
        n = q.shape[1]
        kk = torch.einsum("bthe,bjhe->bhtj", k, k).tril(-1)
        # the solve runs in float32 at least: torch has no half-precision triangular solve
        # (on CPU), and the inverse's long products lose the most precision in fp16/bf16
        work = torch.promote_types(q.dtype, torch.float32)
        eye = torch.eye(n, device=q.device, dtype=work)
        lhs = eye + (beta[..., :, None] * kk).to(work)  # unit lower triangular
        t = torch.linalg.solve_triangular(
            lhs, torch.diag_embed(beta).to(work), upper=False, unitriangular=True
        ).to(q.dtype)
        m = attn.hook_attn_scores(torch.einsum("bthe,bjhe->bhtj", q, k).tril())
        return m @ t
