"""The Kolmogorov-Arnold Transformer's group-rational KAN (Yang & Wang 2025,
"Kolmogorov-Arnold Transformer") replaces fixed activations by learned rational functions
F(x) = (a0 + a1 x + ... + a5 x^5) / (1 + |b1 x + ... + b4 x^4|), one per group of channels, in
front of each linear map: out = W_out F2(W_in F1(x) + b_in) + b_out. Both start as the
identity (KAT fits the second to GELU; here training shapes it). `hook_in_act` holds F1(x)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.activations.base import Activation, Hidden, Input
from workbench.components.hooks import HookPoint

if TYPE_CHECKING:
    from workbench.components.mlp import MLP


class GroupRational(nn.Module):
    """A rational function per group of channels: P(x) / (1 + |Q(x)|), deg P = 5, deg Q = 4,
    no constant in Q (the 'safe' Pade form, which has no poles). Starts as the identity."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        numerator = torch.zeros(groups, 6)
        numerator[:, 1] = 1.0  # P(x) = x
        self.numerator = nn.Parameter(numerator)  # a0..a5 per group
        self.denominator = nn.Parameter(torch.zeros(groups, 4))  # b1..b4 per group

    def forward(self, x: Float[Tensor, "... channel"]) -> Float[Tensor, "... channel"]:
        shape = x.shape
        x = x.reshape(*shape[:-1], self.groups, shape[-1] // self.groups)
        powers = torch.stack([x**i for i in range(6)], dim=-1)  # [..., group, width, 6]
        p = (powers * self.numerator[:, None, :]).sum(-1)
        q = (powers[..., 1:5] * self.denominator[:, None, :]).sum(-1)
        return (p / (1 + q.abs())).reshape(shape)


class KanActivation(Activation):
    def __init__(self, groups: int, d_model: int, d_mlp: int) -> None:
        self.groups, self.d_model, self.d_mlp = groups, d_model, d_mlp

    def install(self, mlp: MLP) -> None:
        mlp.rational_in = GroupRational(self.d_model, self.groups)
        mlp.rational_out = GroupRational(self.d_mlp, self.groups)
        mlp.hook_in_act = HookPoint("batch", "pos", "d_model")

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        x = mlp.hook_in_act(mlp.rational_in(x))
        return mlp.rational_out(mlp.hook_pre(mlp.project_in(x)))
