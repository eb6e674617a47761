"""Per-head summaries of one prompt's attention patterns, for the dashboard's model view and
for notebooks: how spread out each head's attention is, how much goes to the first token, to
the previous token, and to the token after an earlier occurrence of the current one (the
prompt's own induction score, Olsson et al. 2022), and how peaked it is.

Patterns of softmax attention are probabilities. Kinds without a softmax (linear, gated-linear,
delta-rule, pooling) put an effective, possibly signed, mixing matrix at the pattern hook; the
summaries then read the absolute weights, each row normalised to sum to 1 for the entropy."""

from __future__ import annotations

import json
from collections.abc import Iterable
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
    patterns: Float[Tensor, "layer head query_pos key_pos"],
    tokens: list[int],
    metrics: Iterable[str] | None = None,
) -> PatternSummaries:
    """The summaries (`metrics`, default all of `METRICS`) of one prompt's patterns, whose
    tokens are `tokens`. Computed a layer at a time in float64, so that a long prompt's
    patterns are never copied whole."""
    if patterns.ndim != 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise InputError(f"patterns must be [layer, head, pos, pos], got {list(patterns.shape)}")
    n = patterns.shape[-1]
    if len(tokens) != n:
        raise InputError(f"{len(tokens)} tokens for patterns over {n} positions")
    wanted = list(METRICS) if metrics is None else list(metrics)
    if unknown := [m for m in wanted if m not in METRICS]:
        raise InputError(f"unknown summaries {unknown}; choose among {', '.join(METRICS)}")
    ids = torch.tensor(tokens)
    # key k follows an earlier copy of the query's token: tokens[k - 1] == tokens[q], k < q
    follows = torch.zeros(n, n, dtype=torch.bool)
    follows[:, 1:] = ids[:, None] == ids[None, :-1]
    follows &= torch.ones(n, n, dtype=torch.bool).tril(-1)
    per_layer = [_layer_summaries(layer, follows, wanted) for layer in patterns.detach()]
    values = {m: torch.stack([layer[m] for layer in per_layer]).float() for m in wanted}
    return PatternSummaries(values, bool((patterns < 0).any()))


def _layer_summaries(
    pattern: Float[Tensor, "head query_pos key_pos"], follows: Tensor, wanted: list[str]
) -> dict[str, Float[Tensor, " head"]]:
    n = pattern.shape[-1]
    weights = pattern.double().abs()  # [head, q, k]
    total = weights.sum(-1)  # [head, q]
    # rows that attend nowhere (padding) count in no mean; in a causal model query 0 can only
    # attend to itself, so the means start at query 1
    live = total != 0
    live[:, 0] &= n == 1
    nan = torch.full(weights.shape[:1], float("nan"), dtype=torch.float64)

    def mean(per_query: Tensor, rows: Tensor = live) -> Tensor:
        return (per_query * rows).sum(-1) / rows.sum(-1)  # NaN where no row counts

    out: dict[str, Tensor] = {}
    for metric in wanted:
        match metric:
            case "entropy":
                rows = weights / total.clamp_min(1e-300)[..., None]
                out[metric] = mean(-(rows * rows.clamp_min(1e-30).log()).sum(-1))
            case "first_token":
                out[metric] = mean(weights[..., 0])
            case "previous_token":
                prev = torch.zeros_like(total)
                prev[:, 1:] = weights.diagonal(offset=-1, dim1=-2, dim2=-1)
                out[metric] = mean(prev, live & (torch.arange(n) > 0)) if n > 1 else nan
            case "induction":  # NaN when no token repeats
                has = follows.any(-1)
                out[metric] = mean((weights * follows).sum(-1), live & has)
            case "max_weight":
                out[metric] = mean(weights.amax(-1))
    return out
