"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") and
the class token's attention over an image's patches (Dosovitskiy et al. 2021 show both).

Rollout tracks how much each position's final state draws on each input position through the
attention of every layer and the residual connection: per layer,
A' = (1 - r) * mean_heads(A) + r * I with r = 1/2, rows renormalised, and the rollout through
layer l is A'_l ... A'_1 A'_0 (later layers on the left), each row a distribution over inputs.
It ignores the MLPs and what the values carry, so it is a heuristic of where information can
flow, not a measurement of what flows.

Kinds without a softmax (linear, gated-linear, delta-rule, pooling) put a signed effective
mixing matrix at the pattern hook. Rollout reads absolute weights there, each head's rows
normalised to sum to 1 (as `probes.attention` does for its summaries), and the result records
`signed` so a view can say so: the flow of a signed mixing matrix is not a distribution, and
|A| is the closest distribution with the same support."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import names
from workbench.errors import InputError
from workbench.hooked import HookedModel


@dataclass(frozen=True)
class Rollout:
    """`flow[l]`: the rollout through layers 0..l, [query, key], rows summing to 1."""

    flow: Float[Tensor, "layer query_pos key_pos"]
    residual: float  # the identity's share r in A' = (1 - r) mean_heads(A) + r I
    signed: bool  # some pattern had negative weights: absolute values were rolled out

    def to_json(self) -> str:
        return json.dumps(
            {"flow": self.flow.tolist(), "residual": self.residual, "signed": self.signed}
        )


def _checked(patterns: Tensor) -> Tensor:
    if patterns.ndim != 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise InputError(f"patterns must be [layer, head, pos, pos], got {list(patterns.shape)}")
    if not bool(torch.isfinite(patterns).all()):
        raise InputError("patterns hold NaN or infinite weights: nothing to roll out")
    return patterns


def _row_normalised(weights: Tensor) -> Tensor:
    """Rows scaled to sum to 1; a row of zeros (a padded query) stays zero."""
    total = weights.sum(-1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp_min(1e-300), weights)


def attention_rollout(
    patterns: Float[Tensor, "layer head query_pos key_pos"], *, residual: float = 0.5
) -> Rollout:
    """The rollout of one input's patterns (float64). `residual` is the identity's share."""
    patterns = _checked(patterns)
    if not 0.0 <= residual <= 1.0:
        raise InputError(f"residual is the identity's share, in 0..1; got {residual}")
    weights = _row_normalised(patterns.detach().double().abs())  # [layer, head, q, k]
    eye = torch.eye(weights.shape[-1], dtype=torch.float64, device=weights.device)
    flow, out = eye, []
    for layer in weights:
        step = _row_normalised((1 - residual) * layer.mean(0) + residual * eye)
        flow = step @ flow
        out.append(flow)
    return Rollout(torch.stack(out).cpu(), residual, bool((patterns < 0).any()))


@dataclass(frozen=True)
class PatchAttention:
    """The class token's attention over a side x side patch grid (row-major, as `PatchEmbed`
    orders patches): per head, its pattern row; and the rollout's class-token row through each
    layer. Neither sums to 1 over the patches: the rest is the class token's own share."""

    heads: Float[Tensor, "layer head patch"]
    rollout: Float[Tensor, "layer patch"]
    side: int
    signed: bool

    def grid(self, layer: int, head: int | None = None) -> Float[Tensor, "row col"]:
        """One head's map (or, with head None, the rollout through `layer`) as the grid."""
        row = self.rollout[layer] if head is None else self.heads[layer, head]
        return row.reshape(self.side, self.side)

    def to_json(self) -> str:
        return json.dumps(
            {
                "heads": self.heads.tolist(),
                "rollout": self.rollout.tolist(),
                "side": self.side,
                "signed": self.signed,
            }
        )


def patch_attention(
    patterns: Float[Tensor, "layer head query_pos key_pos"], side: int, *, residual: float = 0.5
) -> PatchAttention:
    """CLS attention and rollout of a vision model's patterns: position 0 is the class token,
    positions 1.. the side x side patches."""
    patterns = _checked(patterns)
    if side < 1 or patterns.shape[-1] != side * side + 1:
        raise InputError(
            f"patterns over {patterns.shape[-1]} positions do not hold a class token and "
            f"{side}x{side} patches ({side * side + 1} positions)"
        )
    rolled = attention_rollout(patterns, residual=residual)
    heads = patterns.detach().double()[:, :, 0, 1:].cpu()
    return PatchAttention(heads, rolled.flow[:, 0, 1:], side, rolled.signed)


@torch.no_grad()
def input_patterns(model: HookedModel, inputs: Tensor) -> Float[Tensor, "layer head q k"]:
    """The attention patterns of one input (a batch of one: token ids, an image or a series),
    [layer, head, query, key]."""
    if len(inputs) != 1:
        raise InputError(f"pass one input (a batch of 1), got a batch of {len(inputs)}")
    hooks = [names.attn_pattern(layer) for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(inputs.to(model.cfg.device), names_filter=hooks)
    return torch.stack([cache[hook][0] for hook in hooks]).cpu()
