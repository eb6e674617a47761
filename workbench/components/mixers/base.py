"""What a token mixer provides to `workbench.components.attention.Attention`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxtyping import Bool, Float
from torch import Tensor

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs

Pattern = Float[Tensor, "batch head query_pos key_pos"]
Hidden = Bool[Tensor, "batch 1 query_pos key_pos"] | Bool[Tensor, "query_pos key_pos"] | None


class Mixer:
    """Turns queries and keys into the pattern. `uses_qk` False: the pattern depends on the
    positions alone (`fixed_pattern`), and attention computes no queries or keys."""

    uses_qk = True

    def install(self, attn: Attention) -> None:
        """Register this kind's parameters and hook points on `attn`."""

    def mix(
        self,
        attn: Attention,
        q: Float[Tensor, "batch pos head d_head"],
        k: Float[Tensor, "batch pos head d_head"],
        x: Inputs,
        hidden: Hidden,
    ) -> Pattern:
        """The pattern; `attn.hook_attn_scores` sees its pre-normalised form. `hidden` is True
        where a query may not attend."""
        raise NotImplementedError

    def fixed_pattern(self, attn: Attention, v: Tensor) -> Pattern:
        raise NotImplementedError
