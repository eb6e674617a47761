"""Doubly stochastic attention (Sander et al. 2022, "Sinkformers: Transformers with Doubly
Stochastic Attention"): Sinkhorn's algorithm continued from the softmax pattern."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from workbench.components.mixers.base import Pattern
from workbench.components.mixers.softmax import SoftmaxMixer
from workbench.options import Sinkhorn


class SinkhornMixer(SoftmaxMixer):
    def __init__(self, option: Sinkhorn) -> None:
        self.iterations = option.iterations

    def finish(self, pattern: Pattern) -> Pattern:
        return sinkhorn(pattern, self.iterations)


def sinkhorn(
    pattern: Float[Tensor, "*batch query_pos key_pos"], iterations: int
) -> Float[Tensor, "*batch query_pos key_pos"]:
    """Sinkhorn's algorithm continued from a row-normalised `pattern` (softmax: the first
    iteration): the columns, then the rows, normalised `iterations - 1` more times, in the
    log domain. Rows end summing to 1; columns tend to 1."""
    if iterations == 1:
        return pattern
    log_p = pattern.log()  # hidden pairs stay at -inf
    for _ in range(iterations - 1):
        log_p = log_p - log_p.logsumexp(dim=-2, keepdim=True)
        log_p = log_p - log_p.logsumexp(dim=-1, keepdim=True)
    return log_p.exp()
