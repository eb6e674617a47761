"""Key/value cache for causal models: the keys and values that attention computed for the
positions already run, per layer, so that later positions run alone and still attend to
them. A run with a cache of length n takes its tokens as positions n, n+1, ...; the answer
at those positions is the one a full run of the whole sequence gives (tested per variant).

Uses: generating token by token, and verifying many candidates for the next token against
one shared prefix (`probes.invert`), each candidate costing one position instead of the
whole sequence.

Only attention whose past can be summarised by its keys and values is cached: softmax and
clipped softmax, with learned, sinusoidal, rotary, ALiBi or no positions, optionally a
sliding window. `cache_unsupported` names what stands in the way for any other config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.config import Mask, ModelConfig
from workbench.errors import InputError
from workbench.options import Tokens


def cache_unsupported(config: ModelConfig) -> str | None:
    """Why a key/value cache cannot reproduce this model's full runs, or None if it can."""
    if config.mask is not Mask.CAUSAL:
        return "the model is not causal: earlier positions depend on later tokens"
    if not isinstance(config.input, Tokens):
        return f"input='{config.input}': a cache extends token sequences"
    for layer in config.layer_configs:
        if not layer.attention.cached:
            return f"attention='{layer.attention}' mixes through more than keys and values"
        if not layer.pos.cached:
            return f"pos='{layer.pos}' is not cached (learned, sinusoidal, rotary, alibi are)"
    if config.kv_shift or config.momentum is not None:
        return "kv_shift and momentum read the previous position's projections"
    return None


@dataclass
class KVCache:
    """Per layer, the keys [batch, pos, kv_head, d_head] (after rotary) and values that the
    positions run so far gave. A cache of B sequences serves a run of any multiple k * B of
    rows, row k * B + b continuing sequence b (as `Stream.tile` stacks runs); batch 1
    broadcasts to any batch. A run with `grow=True`
    appends its positions; `frozen()` gives a view that runs from the same prefix without
    changing it (many candidates against one prefix)."""

    keys: dict[int, Tensor] = field(default_factory=dict)
    values: dict[int, Tensor] = field(default_factory=dict)
    grow: bool = True

    @property
    def length(self) -> int:
        """The number of positions held (those of layer 0; a run may stop at any layer)."""
        return 0 if 0 not in self.keys else self.keys[0].shape[1]

    def frozen(self) -> KVCache:
        return KVCache(self.keys, self.values, grow=False)

    def extend(
        self,
        layer: int,
        k: Float[Tensor, "batch pos kv_head d_key"],
        v: Float[Tensor, "batch pos kv_head d_head"],
    ) -> tuple[Tensor, Tensor]:
        """The keys and values of the prefix followed by the new positions' `k`, `v`."""
        past_k, past_v = self.keys.get(layer), self.values.get(layer)
        if past_k is not None and past_v is not None:
            batch = k.shape[0]
            k = _cat(past_k, k, batch)
            v = _cat(past_v, v, batch)
        if self.grow:
            self.keys[layer], self.values[layer] = k, v
        return k, v


def _cat(past: Tensor, new: Tensor, batch: int) -> Tensor:
    held = past.shape[0]
    if held == 1:
        past = past.expand(batch, *past.shape[1:])
    elif held != batch:
        if batch % held:
            raise InputError(
                f"the cache holds {held} sequences and the run has {batch}: run a multiple of "
                "the sequences it holds, or cache a single prefix (batch 1) to share"
            )
        past = past.repeat(batch // held, *([1] * (past.ndim - 1)))
    return torch.cat([past, new], dim=1)
