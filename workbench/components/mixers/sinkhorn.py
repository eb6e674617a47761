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
    iteration), counted as the authors' code counts it (`max_iter`): normalisations of rows
    and columns in turn, rows first, `iterations` in all, in the log domain. An odd count
    ends on the rows (they sum to 1), an even one on the columns; both tend to 1."""
    log_p = pattern.log()  # hidden pairs stay at -inf
    for step in range(1, iterations):
        log_p = log_p - log_p.logsumexp(dim=-1 if step % 2 == 0 else -2, keepdim=True)
    return log_p.exp() if iterations > 1 else pattern
