"""Transformer Program attention (Friedman, Wettig & Chen 2023, "Learning Transformer
Programs"): hard attention to the closest matching key, or a sum over every matching key.

A key matches where q.k > 1/2: programs use one-hot queries and keys (the query's value
mapped through the head's predicate), so q.k is 1 on a match and 0 elsewhere. The ranking is
the authors' fixed relative-position bias at its argmax: nearest first, a key to the left
before one as far to the right, the query's own position last; no match attends to
position 0. `hook_attn_scores` holds q.k."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.components.mixers.base import Hidden, Mixer, Pattern

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs


class ClosestMatchMixer(Mixer):
    def __init__(self, counting_heads: int) -> None:
        self.counting_heads = counting_heads

    def mix(self, attn: Attention, q: Tensor, k: Tensor, x: Inputs, hidden: Hidden) -> Pattern:
        scores = attn.hook_attn_scores(torch.einsum("bqhe,bkhe->bhqk", q, k))
        matches = scores > 0.5
        if hidden is not None:
            matches = matches & ~hidden
        n_query, n_key = scores.shape[-2:]
        closest = F.one_hot(closest_match(matches, n_key - n_query), n_key).to(scores.dtype)
        counting = torch.arange(scores.shape[1], device=scores.device)
        counting = (counting >= scores.shape[1] - self.counting_heads)[:, None, None]
        return torch.where(counting, matches.to(scores.dtype), closest)


def closest_match(matches: Tensor, offset: int = 0) -> Tensor:
    """(..., query, key) bool -> (..., query) the chosen key; queries are the positions
    `offset`.. of the keys (a run of the last positions reads every key)."""
    n_query, n_key = matches.shape[-2:]
    q = torch.arange(offset, offset + n_query, device=matches.device)[:, None]
    k = torch.arange(n_key, device=matches.device)[None, :]
    rank = torch.where(q == k, 2 * n_key + 1, 2 * (k - q).abs() + (k > q).long())
    ranked = torch.where(matches, rank, 2 * n_key + 2)
    return torch.where(matches.any(-1), ranked.argmin(-1), 0)
