"""Per-head summaries of one prompt's attention patterns, for the dashboard's model view and
for notebooks: how spread out each head's attention is, how much goes to the first token, to
the previous token, and to the token after an earlier occurrence of the current one (the
prompt's own induction score, Olsson et al. 2022), and how peaked it is.

Patterns of softmax attention are probabilities. Kinds without a softmax (linear, gated-linear,
delta-rule, pooling) put an effective, possibly signed, mixing matrix at the pattern hook; the
summaries then read the absolute weights, each row normalised to sum to 1 for the entropy."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import InputError

METRICS = {
    "entropy": "mean entropy of a query's attention (nats)",
    "first_token": "mean attention to the first token",
    "previous_token": "mean attention to the previous token",
    "induction": "mean attention to the token after an earlier copy of the current token",
    "max_weight": "mean of each query's largest attention weight",
}


@dataclass(frozen=True)
class PatternSummaries:
    """Each metric of `METRICS` as a [layer, head] tensor (NaN where a metric has no query:
    the induction score of a prompt without repeated tokens)."""

    values: dict[str, Float[Tensor, "layer head"]]
    signed: bool  # some pattern has negative weights: an effective mixing matrix

    def to_json(self) -> str:
        return json.dumps(
            {"signed": self.signed, **{k: v.tolist() for k, v in self.values.items()}}
        )


def pattern_summaries(
    patterns: Float[Tensor, "layer head query_pos key_pos"], tokens: list[int]
) -> PatternSummaries:
    """The summaries of one prompt's patterns, whose tokens are `tokens`."""
    if patterns.ndim != 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise InputError(f"patterns must be [layer, head, pos, pos], got {list(patterns.shape)}")
    n = patterns.shape[-1]
    if len(tokens) != n:
        raise InputError(f"{len(tokens)} tokens for patterns over {n} positions")
    weights = patterns.detach().double().abs()  # [layer, head, q, k]
    total = weights.sum(-1, keepdim=True)
    # rows that attend nowhere (padding) count in no mean; in a causal model query 0 can only
    # attend to itself, so the means start at query 1
    empty = (total == 0).expand_as(weights)
    weights = weights.masked_fill(empty, float("nan"))
    rows = weights / total
    queries = slice(1 if n > 1 else 0, None)
    entropy = -(rows * rows.clamp_min(1e-30).log()).sum(-1)
    ids = torch.tensor(tokens)
    # key k follows an earlier copy of the query's token: tokens[k - 1] == tokens[q], k < q
    follows = torch.zeros(n, n, dtype=torch.bool)
    follows[:, 1:] = ids[:, None] == ids[None, :-1]
    follows &= torch.ones(n, n, dtype=torch.bool).tril(-1)
    has = follows.any(-1)
    nan = torch.full(weights.shape[:2], float("nan"), dtype=torch.float64)
    values = {
        "entropy": entropy[..., queries].nanmean(-1),
        "first_token": weights[..., queries, 0].nanmean(-1),
        "previous_token": (
            weights.diagonal(offset=-1, dim1=-2, dim2=-1).nanmean(-1) if n > 1 else nan
        ),
        "induction": (weights * follows).sum(-1)[..., has].nanmean(-1),  # NaN: no repeats
        "max_weight": weights.amax(-1)[..., queries].nanmean(-1),
    }
    return PatternSummaries({k: v.float() for k, v in values.items()}, bool((patterns < 0).any()))
