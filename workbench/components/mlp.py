"""The MLP: out = W_out act(x W_in + b_in) + b_out, the activation chosen by the config's MLP
kind (`workbench/components/activations/`: GELU, ReLU, top-k, the GLU family, KAN).

`hook_pre` is the (gate) pre-activation, `hook_post` the hidden activation fed to W_out;
a kind may add its own hook points (`hook_pre_linear` of the GLU family, KAN's
`hook_in_act`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.activations.kan import GroupRational
from workbench.components.hooks import HookPoint
from workbench.config import ModelConfig


class MLP(nn.Module):
    # what the kind's activation installs (activations/): the GLU family, KAN
    W_gate: nn.Parameter
    W_table: nn.Parameter  # lookup tables
    table_sizes: Tensor
    table_starts: Tensor
    hook_pre_linear: HookPoint
    rational_in: GroupRational
    rational_out: GroupRational
    hook_in_act: HookPoint

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.activation = cfg.mlp.component(cfg)
        self.biased = cfg.bias  # without biases, skip adding the zero b_in, b_out
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp), requires_grad=cfg.bias)
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model), requires_grad=cfg.bias)
        self.hook_pre = HookPoint("batch", "pos", "d_mlp")
        self.hook_post = HookPoint("batch", "pos", "d_mlp")
        self.activation.install(self)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        post = self.hook_post(self.activation.hidden(self, x))
        return F.linear(post, self.W_out.T, self.b_out if self.biased else None)

    def project_in(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_mlp"]:
        """x W_in + b_in, in one fused addmm."""
        return F.linear(x, self.W_in.T, self.b_in if self.biased else None)


def make_mlp(cfg: ModelConfig) -> MLP | None:
    return MLP(cfg) if cfg.has_mlp else None
