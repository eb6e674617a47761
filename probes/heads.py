"""Head scores on repeated random tokens (Olsson et al. 2022, "In-context Learning and
Induction Heads"): the induction score of a head is its mean attention from each token of the
second copy to the token after that token's first occurrence. The previous-token score is its
mean attention from each token of the first copy to the token just before: the positions whose
keys an induction head reads, so a layer-0 previous-token head shows up there."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import names
from workbench.hooked import HookedModel


@dataclass(frozen=True)
class HeadScores:
    induction: Float[Tensor, "layer head"]
    previous_token: Float[Tensor, "layer head"]
    half_len: int
    n_sequences: int

    def top_induction_head(self) -> tuple[int, int, float]:
        flat = int(self.induction.argmax())
        layer, head = divmod(flat, self.induction.shape[1])
        return layer, head, float(self.induction[layer, head])

    def to_json(self) -> str:
        return json.dumps(
            {
                "induction": self.induction.tolist(),
                "previous_token": self.previous_token.tolist(),
                "half_len": self.half_len,
                "n_sequences": self.n_sequences,
            }
        )


@torch.no_grad()
def head_scores(
    model: HookedModel,
    *,
    half_len: int,
    n_sequences: int = 64,
    vocab: tuple[int, int] = (1, 41),
    bos: int | None = 0,
    seed: int = 0,
) -> HeadScores:
    """Scores of every head on `n_sequences` sequences [BOS] r r, r uniform in `vocab`."""
    gen = torch.Generator().manual_seed(seed)
    half = torch.randint(vocab[0], vocab[1], (n_sequences, half_len), generator=gen)
    parts = [half, half] if bos is None else [torch.full((n_sequences, 1), bos), half, half]
    tokens = torch.cat(parts, dim=1).to(model.cfg.device)
    offset = 0 if bos is None else 1
    n_layers = model.cfg.n_layers
    _, cache = model.run_with_cache(
        tokens, names_filter=[names.attn_pattern(layer) for layer in range(n_layers)]
    )
    second = torch.arange(offset + half_len, offset + 2 * half_len, device=tokens.device)
    first = torch.arange(max(1, offset), offset + half_len, device=tokens.device)
    induction, previous = [], []
    for layer in range(n_layers):
        pattern = cache[names.attn_pattern(layer)]  # [batch, head, query, key]
        induction.append(pattern[:, :, second, second - half_len + 1].mean((0, 2)))
        previous.append(pattern[:, :, first, first - 1].mean((0, 2)))
    return HeadScores(
        torch.stack(induction).cpu(), torch.stack(previous).cpu(), half_len, n_sequences
    )
