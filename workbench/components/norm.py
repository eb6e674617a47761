"""Normalisation layers with hooks on the scale and the normalised output.

LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer
Normalization"). `hook_scale` holds the divisor and `hook_normalized` the normalised
stream before the learned scale and bias, as in TransformerLens (`(x - mean) / scale`;
`x / scale` for RMSNorm); the norm's output is `normalized * w (+ b)`. A norm whose hooks
nothing reads or edits runs as one fused op (the same numbers up to rounding), as
`hook_result` is only computed when something asks for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.hooks import RESID, HookPoint
from workbench.config import ModelConfig, Norm


class LayerNorm(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.eps = cfg.norm_eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint("batch", "pos", "one")
        self.hook_normalized = HookPoint(*RESID)

    def forward(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        if not (self.hook_scale.has_hooks() or self.hook_normalized.has_hooks()):
            return self.unhooked(x)  # nothing reads or edits the hooks: one fused op
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w + self.b

    def unhooked(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The same norm over the last axis of any tensor, without firing the hooks."""
        return F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps)


class RMSNorm(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.eps = cfg.norm_eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.hook_scale = HookPoint("batch", "pos", "one")
        self.hook_normalized = HookPoint(*RESID)

    def forward(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        if not (self.hook_scale.has_hooks() or self.hook_normalized.has_hooks()):
            return self.unhooked(x)  # nothing reads or edits the hooks: one fused op
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w

    def unhooked(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The same norm over the last axis of any tensor, without firing the hooks."""
        return F.rms_norm(x, x.shape[-1:], self.w, self.eps)


def make_norm(cfg: ModelConfig) -> LayerNorm | RMSNorm | None:
    match cfg.norm:
        case Norm.LAYERNORM:
            return LayerNorm(cfg)
        case Norm.RMSNORM:
            return RMSNorm(cfg)
        case Norm.NONE:
            return None


class MLMHead(nn.Module):
    """BERT's masked-LM prediction transform (Devlin et al. 2019): dense, GELU, LayerNorm, then
    the (usually tied) unembedding. `hook_act` holds the activation before the LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_dense = nn.Parameter(torch.empty(cfg.d_model, cfg.d_model))
        self.b_dense = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_act = HookPoint(*RESID)
        self.ln = LayerNorm(cfg)

    def forward(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        return self.ln(self.hook_act(torch.nn.functional.gelu(x @ self.W_dense + self.b_dense)))
