"""The pooling token mixer of PoolFormer (Yu et al. 2022, "MetaFormer Is Actually What You
Need for Vision"): each token becomes the average of its neighbourhood minus itself,
AvgPool(x) - x, with padding left out of the average (count_include_pad=False). As a matrix
over positions it is the attention pattern of a pooling layer, so attention views and patching
treat it like any other mixer.

- Patch grids (input='patches'): a pool_size x pool_size neighbourhood on the grid. The class
  token, which PoolFormer does not have, averages every patch (the global average pooling that
  PoolFormer's classifier reads); patches do not read it.
- Sequences: the pool_size positions ending at each token (causal), or centred on it.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def pooling_matrix(
    n: int,
    pool_size: int,
    causal: bool,
    grid: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "query_pos key_pos"]:
    """AvgPool - I as an [n, n] mixing matrix; with `grid`, position 0 is the class token and
    positions 1.. are the grid's patches in row-major order."""
    if grid is None:
        q = torch.arange(n, device=device)[:, None]
        k = torch.arange(n, device=device)[None, :]
        near = (k <= q) & (q - k < pool_size) if causal else (q - k).abs() <= pool_size // 2
        average = near.float() / near.sum(-1, keepdim=True)
    else:
        cell = torch.arange(grid * grid, device=device)
        rows, cols = cell // grid, cell % grid
        half = pool_size // 2
        near = ((rows[:, None] - rows[None, :]).abs() <= half) & (
            (cols[:, None] - cols[None, :]).abs() <= half
        )
        average = torch.zeros(n, n, device=device)
        average[1:, 1:] = near.float() / near.sum(-1, keepdim=True)
        average[0, 1:] = 1.0 / (n - 1)
    return (average - torch.eye(n, device=device)).to(dtype)  # the averages in float32
