"""Transformer blocks: how attention and MLP write to the residual stream.

- pre-norm sequential (GPT-2): x + attn(ln1(x)), then + mlp(ln2(.));
- post-norm sequential (Vaswani et al. 2017): ln1(x + attn(x)), then ln2(. + mlp(.));
- parallel (GPT-J, Wang & Komatsuzaki 2021; GPT-NeoX): x + attn(ln1(x)) + mlp(ln2(x)).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from workbench.components.attention import make_attention
from workbench.components.mlp import make_mlp
from workbench.components.norm import make_norm
from workbench.config import ModelConfig, NormPlacement, Wiring

Resid = Float[Tensor, "batch pos d_model"]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.wiring = cfg.wiring
        self.post_norm = cfg.norm_placement is NormPlacement.POST
        self.hook_resid_pre = HookPoint()
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg)
        self.hook_attn_out = HookPoint()
        if cfg.wiring is Wiring.SEQUENTIAL:
            self.hook_resid_mid = HookPoint()
        self.ln2 = make_norm(cfg) if cfg.has_mlp else None
        self.mlp = make_mlp(cfg)
        if self.mlp is not None:
            self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        if cfg.depth_weighted:
            self.hook_dwa = HookPoint()  # the depth-weighted average fed to the next block

    def forward(self, x: Resid) -> Resid:
        x = self.hook_resid_pre(x)
        match self.wiring:
            case Wiring.SEQUENTIAL if self.post_norm:
                return self.hook_resid_post(self._post_norm(x))
            case Wiring.SEQUENTIAL:
                x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(_norm(self.ln1, x))))
                return self.hook_resid_post(x + self._mlp(_norm(self.ln2, x)))
            case Wiring.PARALLEL:
                attn_out = self.hook_attn_out(self.attn(_norm(self.ln1, x)))
                return self.hook_resid_post(x + attn_out + self._mlp(_norm(self.ln2, x)))

    def _post_norm(self, x: Resid) -> Resid:
        x = self.hook_resid_mid(_norm(self.ln1, x + self.hook_attn_out(self.attn(x))))
        if self.mlp is None:
            return x
        return _norm(self.ln2, x + self._mlp(x))

    def _mlp(self, x: Resid) -> Resid | float:
        return 0.0 if self.mlp is None else self.hook_mlp_out(self.mlp(x))


def _norm(norm: nn.Module | None, x: Resid) -> Resid:
    return x if norm is None else norm(x)
