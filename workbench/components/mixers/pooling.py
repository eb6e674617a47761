"""PoolFormer's token mixer (Yu et al. 2022, "MetaFormer Is Actually What You Need for
Vision"): the average of a neighbourhood minus the token itself, a fixed pattern with no
queries or keys (workbench.components.pooling builds it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from workbench.components.mixers.base import Mixer, Pattern
from workbench.components.pooling import pooling_matrix
from workbench.options import Pooling

if TYPE_CHECKING:
    from workbench.components.attention import Attention


class PoolingMixer(Mixer):
    uses_qk = False

    def __init__(self, option: Pooling, grid: int | None) -> None:
        self.size, self.grid = option.size, grid  # grid: patches per row, None for tokens

    def fixed_pattern(self, attn: Attention, v: Tensor) -> Pattern:
        mixing = pooling_matrix(v.shape[1], self.size, attn.causal, self.grid, v.device, v.dtype)
        return mixing.expand(v.shape[0], attn.n_heads, -1, -1)
