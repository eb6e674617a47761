"""Softmax attention (Vaswani et al. 2017) and the kinds that change its scores or its
normalised pattern: clipped softmax (Bondarenko et al. 2023, "Quantizable Transformers") and
the forgetting gate (Lin et al. 2025, "Forgetting Transformer")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.components.mixers.base import Hidden, Mixer, Pattern
from workbench.components.softmax import softmax
from workbench.options import ClippedSoftmax

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs

Scores = Float[Tensor, "batch head query_pos key_pos"]


class SoftmaxMixer(Mixer):
    """softmax(q.k / sqrt(d_head) + position biases), hidden pairs at -inf."""

    def mix(self, attn: Attention, q: Tensor, k: Tensor, x: Inputs, hidden: Hidden) -> Pattern:
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(attn.d_head)
        scores = self.bias(attn, attn.positions.score_bias(attn, scores, q), x)
        if hidden is not None:
            scores = scores.masked_fill(hidden, float("-inf"))
        return self.finish(softmax(attn.hook_attn_scores(scores)))

    def bias(self, attn: Attention, scores: Scores, x: Inputs) -> Scores:
        """Scores plus this kind's own term."""
        return scores

    def finish(self, pattern: Pattern) -> Pattern:
        """The pattern from the softmax."""
        return pattern


class ClippedSoftmaxMixer(SoftmaxMixer):
    """clip((zeta - gamma) softmax + gamma, 0, 1): exact zeros become reachable."""

    def __init__(self, option: ClippedSoftmax) -> None:
        self.gamma, self.zeta = option.gamma, option.zeta

    def finish(self, pattern: Pattern) -> Pattern:
        return ((self.zeta - self.gamma) * pattern + self.gamma).clamp(0.0, 1.0)


class ForgettingMixer(SoftmaxMixer):
    """Scores plus D_ij = sum over l in (j, i] of log f_l, f a sigmoid gate per head."""

    def install(self, attn: Attention) -> None:
        d, h = attn.d_model, attn.n_heads
        attn.W_F = nn.Parameter(torch.empty(d, h))
        attn.b_F = nn.Parameter(torch.full((h,), 3.0))  # start near f = 1: little forgetting
        attn.hook_forget_gate = HookPoint("batch", "pos", "head")

    def bias(self, attn: Attention, scores: Scores, x: Inputs) -> Scores:
        from workbench.components.attention import gate_logits

        gate = attn.hook_forget_gate(torch.sigmoid(gate_logits(x, attn.W_F) + attn.b_F))
        cum = torch.log(gate).cumsum(dim=1).transpose(1, 2)  # [batch, head, pos]
        return scores + (cum[:, :, :, None] - cum[:, :, None, :])
