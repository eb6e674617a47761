"""Positions added to the embeddings before block 0: a learned table (GPT-2, BERT), the
fixed sinusoidal table (Vaswani et al. 2017) and Abacus places (McLeish et al. 2024,
"Transformers Can Do Arithmetic with the Right Embeddings"). The table is the model's
`W_pos` (a parameter, or a buffer for the fixed one), its output `hook_pos_embed`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from workbench.components.hooks import RESID, HookPoint
from workbench.components.positional import abacus_positions, sinusoidal_table

if TYPE_CHECKING:
    from workbench.components.attention import Sequences
    from workbench.model import Transformer

Residual = Float[Tensor, "batch pos d_model"]


class EmbeddedPositions:
    """What a position scheme adds to the embeddings: by default, nothing (positions inside
    attention, PEG, NoPE)."""

    def install(self, model: Transformer) -> None:
        """Register this scheme's table, buffers and hook point on `model`."""

    def add(self, model: Transformer, x: Residual, tokens: Tensor, seqs: Sequences) -> Residual:
        """The embeddings `x` of `tokens` with their positions added."""
        return x


class TablePositions(EmbeddedPositions):
    """A row of `W_pos` per position: learned (`fixed` None) or a fixed table."""

    def __init__(self, n_ctx: int, d_model: int, fixed: Tensor | None = None) -> None:
        self.n_ctx, self.d_model, self.fixed = n_ctx, d_model, fixed

    def install(self, model: Transformer) -> None:
        if self.fixed is None:
            model.W_pos = nn.Parameter(torch.empty(self.n_ctx, self.d_model))
        else:
            model.register_buffer("W_pos", self.fixed, persistent=False)
        model.hook_pos_embed = HookPoint(*RESID)

    def add(self, model: Transformer, x: Residual, tokens: Tensor, seqs: Sequences) -> Residual:
        if seqs.position_ids is None:  # the positions after the cached ones
            pos = model.W_pos[seqs.offset : seqs.offset + x.shape[1]].expand(x.shape[0], -1, -1)
            if model.hook_pos_embed.has_hooks():  # a view of W_pos: a hook may edit in place
                pos = pos.clone()
        else:
            pos = model.W_pos[seqs.position_ids]
        return x + model.hook_pos_embed(pos)


def sinusoidal_positions(n_ctx: int, d_model: int) -> TablePositions:
    return TablePositions(n_ctx, d_model, sinusoidal_table(n_ctx, d_model))


class AbacusPositions(EmbeddedPositions):
    """Row 0 of `W_pos` for tokens that are not digits, row i for a digit at place i of its
    number. In training each sequence's places shift by a random 0..`max_offset`, drawn from
    the model's `train_generator`, so that the rows of places beyond the longest training
    number are trained too (length generalisation)."""

    def __init__(self, digits: tuple[int, ...], max_offset: int, n_ctx: int, d_model: int) -> None:
        self.digits, self.max_offset, self.n_ctx, self.d_model = digits, max_offset, n_ctx, d_model

    def install(self, model: Transformer) -> None:
        rows = self.n_ctx + 1 + self.max_offset
        model.W_pos = nn.Parameter(torch.empty(rows, self.d_model))
        model.register_buffer("digit_ids", torch.tensor(self.digits), persistent=False)
        model.hook_pos_embed = HookPoint(*RESID)

    def add(self, model: Transformer, x: Residual, tokens: Tensor, seqs: Sequences) -> Residual:
        return x + model.hook_pos_embed(model.W_pos[self.places(model, tokens)])

    def places(
        self, model: Transformer, tokens: Int[Tensor, "batch pos"]
    ) -> Int[Tensor, "batch pos"]:
        """Each digit's place in its number (shifted in training), 0 for other tokens."""
        places = abacus_positions(tokens, model.digit_ids)
        if not (model.training and self.max_offset):
            return places
        shift = torch.randint(
            0, self.max_offset + 1, (len(tokens), 1), generator=model.train_generator
        )
        return torch.where(places > 0, places + shift.to(places.device), 0)
