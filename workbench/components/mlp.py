"""MLPs: GELU (Hendrycks & Gimpel 2016), ReLU, and SwiGLU (Shazeer 2020, "GLU Variants
Improve Transformer"). `hook_pre` is the (gate) pre-activation, `hook_pre_linear` the linear
branch of a gated MLP, `hook_post` the hidden activation fed to W_out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from workbench.config import MLPKind, ModelConfig


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp), requires_grad=cfg.bias)
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model), requires_grad=cfg.bias)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()
        if self.kind is MLPKind.SWIGLU:
            self.W_gate = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
            self.hook_pre_linear = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        match self.kind:
            case MLPKind.GELU:
                post = F.gelu(self.hook_pre(x @ self.W_in + self.b_in))
            case MLPKind.RELU:
                post = F.relu(self.hook_pre(x @ self.W_in + self.b_in))
            case MLPKind.SWIGLU:
                gate = self.hook_pre(x @ self.W_gate)
                linear = self.hook_pre_linear(x @ self.W_in + self.b_in)
                post = F.silu(gate) * linear
            case MLPKind.NONE:
                raise AssertionError("attention-only configs build no MLP")
        return self.hook_post(post) @ self.W_out + self.b_out


def make_mlp(cfg: ModelConfig) -> MLP | None:
    return MLP(cfg) if cfg.has_mlp else None
