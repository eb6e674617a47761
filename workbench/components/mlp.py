"""MLPs: GELU (Hendrycks & Gimpel 2016; exact, or its tanh approximation), ReLU; the GLU family SwiGLU, GEGLU and ReGLU
(Shazeer 2020, "GLU Variants Improve Transformer"); and top-k ReLU (Li et al. 2023, "The Lazy
Neuron Phenomenon", the Top-k Transformer), which keeps the k largest activations per token.

The Kolmogorov-Arnold Transformer's group-rational KAN (Yang & Wang 2025, "Kolmogorov-Arnold
Transformer") replaces fixed activations by learned rational functions
F(x) = (a0 + a1 x + ... + a5 x^5) / (1 + |b1 x + ... + b4 x^4|), one per group of channels, in
front of each linear map: out = W_out F2(W_in F1(x) + b_in) + b_out. Both start as the
identity (KAT fits the second to GELU; here training shapes it).

`hook_pre` is the (gate) pre-activation, `hook_pre_linear` the linear branch of a gated MLP,
`hook_post` the hidden activation fed to W_out (for top-k: after the other units are zeroed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.config import ModelConfig
from workbench.options import GeGLU, Gelu, GeluTanh, Kan, ReGLU, Relu, SwiGLU, TopK


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        self.biased = cfg.bias  # without biases, skip adding the zero b_in, b_out
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp), requires_grad=cfg.bias)
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model), requires_grad=cfg.bias)
        self.hook_pre = HookPoint("batch", "pos", "d_mlp")
        self.hook_post = HookPoint("batch", "pos", "d_mlp")
        if isinstance(self.kind, Kan):
            self.rational_in = GroupRational(cfg.d_model, self.kind.groups)
            self.rational_out = GroupRational(cfg.d_mlp, self.kind.groups)
            self.hook_in_act = HookPoint(
                "batch", "pos", "d_model"
            )  # F1(x), the input's learned activation
        if cfg.mlp.gated:
            self.W_gate = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
            self.hook_pre_linear = HookPoint("batch", "pos", "d_mlp")

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        match self.kind:
            case Gelu():
                post = F.gelu(self.hook_pre(self._in(x)))
            case GeluTanh():
                post = F.gelu(self.hook_pre(self._in(x)), approximate="tanh")
            case Relu():
                post = F.relu(self.hook_pre(self._in(x)))
            case SwiGLU() | GeGLU() | ReGLU():
                gate = self.hook_pre(x @ self.W_gate)
                linear = self.hook_pre_linear(self._in(x))
                post = GLU_ACTIVATIONS[type(self.kind)](gate) * linear
            case TopK(k=k):
                post = top_k_relu(self.hook_pre(self._in(x)), k)
            case Kan():
                x = self.hook_in_act(self.rational_in(x))
                post = self.rational_out(self.hook_pre(self._in(x)))
            case _:  # NoMLP: attention-only configs build no MLP
                raise AssertionError(f"no MLP computes {self.kind}")
        return F.linear(self.hook_post(post), self.W_out.T, self.b_out if self.biased else None)

    def _in(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_mlp"]:
        return F.linear(x, self.W_in.T, self.b_in if self.biased else None)  # one fused addmm


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


GLU_ACTIVATIONS = {SwiGLU: F.silu, GeGLU: F.gelu, ReGLU: F.relu}


def top_k_relu(pre: Float[Tensor, "... d_mlp"], k: int | None) -> Float[Tensor, "... d_mlp"]:
    """relu(pre) with all but the k largest entries of each row set to zero."""
    act = F.relu(pre)
    values, index = act.topk(k or act.shape[-1], dim=-1)
    return torch.zeros_like(act).scatter(-1, index, values)


def make_mlp(cfg: ModelConfig) -> MLP | None:
    return MLP(cfg) if cfg.has_mlp else None
