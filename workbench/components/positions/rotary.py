"""Rotary positions (Su et al., "RoFormer"), optionally with xPos's decay per frequency (Sun
et al. 2022, "A Length-Extrapolatable Transformer"): queries and keys rotate by position."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from workbench.components.hooks import HookPoint
from workbench.components.positional import apply_rotary, apply_xpos, rotary_angles, xpos_scales
from workbench.components.positions.base import Positions
from workbench.options import Rotary, XPos

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Sequences


class RotaryPositions(Positions):
    def __init__(self, option: Rotary, n_ctx: int, d_head: int) -> None:
        self.option, self.n_ctx, self.dims = option, n_ctx, option.dims(d_head)

    def install(self, attn: Attention) -> None:
        if isinstance(self.option, XPos):
            scales = xpos_scales(self.n_ctx, self.dims, self.option.scale_base)
            attn.register_buffer("xpos_scale", scales, persistent=False)
        attn.hook_rot_q = HookPoint("batch", "pos", "head", "d_head")
        attn.hook_rot_k = HookPoint("batch", "pos", "kv_head", "d_head")
        cos, sin = rotary_angles(self.n_ctx, self.dims, self.option.base)
        attn.register_buffer("rot_cos", cos, persistent=False)
        attn.register_buffer("rot_sin", sin, persistent=False)

    def rotate(
        self, attn: Attention, q: Tensor, k: Tensor, seqs: Sequences
    ) -> tuple[Tensor, Tensor]:
        nq, n = q.shape[1], k.shape[1]  # the queries are the last of the keys' positions
        start = seqs.offset
        if seqs.position_ids is None:
            at, q_at = slice(start, start + n), slice(start + n - nq, start + n)
        else:
            at, q_at = seqs.position_ids, seqs.position_ids[:, n - nq :]
        q = apply_rotary(q, attn.rot_cos[q_at], attn.rot_sin[q_at])
        k = apply_rotary(k, attn.rot_cos[at], attn.rot_sin[at])
        if isinstance(self.option, XPos):
            q = apply_xpos(q, attn.xpos_scale[n - nq : n], inverse=False)
            k = apply_xpos(k, attn.xpos_scale[:n], inverse=True)
        return attn.hook_rot_q(q), attn.hook_rot_k(k)
