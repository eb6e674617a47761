"""What a position scheme provides to attention: by default, nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxtyping import Float
from torch import Tensor

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Sequences

Scores = Float[Tensor, "batch head query_pos key_pos"]


class Positions:
    """No position inside attention (embedded positions, PEG, NoPE)."""

    def install(self, attn: Attention) -> None:
        """Register this scheme's parameters, buffers and hook points on `attn`."""

    def rotate(
        self, attn: Attention, q: Tensor, k: Tensor, seqs: Sequences
    ) -> tuple[Tensor, Tensor]:
        """Queries and keys with their positions applied."""
        return q, k

    def score_bias(self, attn: Attention, scores: Scores, q: Tensor) -> Scores:
        """Softmax scores with this scheme's terms added."""
        return scores

    def values(self, attn: Attention, pattern: Scores, z: Tensor) -> Tensor:
        """The heads' outputs with this scheme's value terms added."""
        return z
