"""Random untrained Transformer Programs of every configuration, and random inputs."""

from __future__ import annotations

import numpy as np
import torch

from rasp.learned.model import ProgramModel, ProgramShape

CONFIGS = [  # (layers, cat heads, num heads, cat mlps, num mlps)
    (1, 1, 0, 0, 0),
    (1, 0, 1, 0, 1),
    (1, 2, 2, 1, 1),
    (2, 1, 1, 2, 0),
    (2, 0, 2, 0, 2),
    (3, 2, 2, 2, 2),
    (3, 4, 4, 2, 2),
]


def random_model(
    config: tuple[int, ...],
    *,
    autoregressive: bool,
    seed: int,
    d_vocab: int,
    d_out: int,
    n_ctx: int,
    d_var: int,
) -> ProgramModel:
    layers, cat_heads, num_heads, cat_mlps, num_mlps = config
    shape = ProgramShape(
        d_vocab=d_vocab,
        d_out=d_out,
        n_ctx=n_ctx,
        d_var=d_var,
        n_layers=layers,
        cat_heads=cat_heads,
        num_heads=num_heads,
        cat_mlps=cat_mlps,
        num_mlps=num_mlps,
        d_mlp=16,
        autoregressive=autoregressive,
    )
    torch.manual_seed(seed)
    model = ProgramModel(shape)
    with torch.no_grad():  # sharper predicates: random ones match rarely or everywhere
        for layer in model.blocks:
            layer.cat_pred.mul_(4)
    return model


def random_tokens(gen: np.random.Generator, d_vocab: int, n_ctx: int, n: int) -> np.ndarray:
    """Token ids 1.. with random lengths, padded with 0 (some rows full length)."""
    tokens = gen.integers(1, d_vocab, size=(n, n_ctx))
    lengths = gen.integers(1, n_ctx + 1, size=n)
    tokens[np.arange(n_ctx)[None, :] >= lengths[:, None]] = 0
    return tokens
