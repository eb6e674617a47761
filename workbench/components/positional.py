"""Positional encodings.

- sinusoidal table: Vaswani et al. 2017, "Attention Is All You Need", section 3.5;
- rotary embedding: Su et al. 2021, "RoFormer" (half-split pairing of GPT-NeoX and LLaMA);
- xPos: Sun et al. 2022, "A Length-Extrapolatable Transformer" (rotary with a per-frequency
  decay zeta_j^((n - m) / B), zeta_j = (2j / d + 0.4) / 1.4);
- FIRE: Li et al. 2024, "Functional Interpolation for Relative Positions Improves Long Context
  Transformers" (bias = MLP(psi(i - j) / psi(max(L, i))), psi(x) = log(c x + 1));
- Abacus: McLeish et al. 2024, "Transformers Can Do Arithmetic with the Right Embeddings"
  (a digit's position is its place within its own number; other tokens get position 0);
- ALiBi slopes and biases: Press et al. 2022, "Train Short, Test Long";
- T5 relative-position buckets: Raffel et al. 2020, "Exploring the Limits of Transfer
  Learning with a Unified Text-to-Text Transformer", section 2.1.
Learned absolute embeddings are a plain parameter in the embedding module.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


def sinusoidal_table(n_ctx: int, d_model: int) -> Float[Tensor, "pos d_model"]:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pos = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model
    )
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
    return table.float()


def rotary_angles(
    n_ctx: int, rotary_dim: int, base: float
) -> tuple[Float[Tensor, "pos half"], Float[Tensor, "pos half"]]:
    """cos and sin of pos * base^(-2j/rotary_dim) for the rotary_dim/2 frequency pairs."""
    inv_freq = base ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
    angles = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv_freq
    return angles.cos().float(), angles.sin().float()


def apply_rotary(
    x: Float[Tensor, "batch pos head d_head"],
    cos: Float[Tensor, "*batch pos half"],
    sin: Float[Tensor, "*batch pos half"],
) -> Float[Tensor, "batch pos head d_head"]:
    """Rotate pairs (x[j], x[j + half]) of the first 2*half dims by the angle of each position
    (one angle table for the batch, or one per sequence)."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)  # [..., pos, 1, half] broadcasts over heads
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c, rest], dim=-1)


def xpos_scales(n_ctx: int, rotary_dim: int, scale_base: float) -> Float[Tensor, "pos half"]:
    """zeta_j^(n / B) for every position n and frequency j; queries are multiplied by it and
    keys divided, so scores decay as zeta_j^((n - m) / B). Positions are centred (as the
    reference implementation does) to keep the powers in range; the ratio is unchanged."""
    half = rotary_dim // 2
    zeta = (torch.arange(half, dtype=torch.float64) * 2 / rotary_dim + 0.4) / 1.4
    pos = torch.arange(n_ctx, dtype=torch.float64) - n_ctx // 2
    return (zeta[None, :] ** (pos[:, None] / scale_base)).float()


def apply_xpos(
    x: Float[Tensor, "batch pos head d_head"], scales: Float[Tensor, "pos half"], inverse: bool
) -> Float[Tensor, "batch pos head d_head"]:
    """Multiply the rotated pairs (j, j + half) by their scale (or divide, for keys)."""
    half = scales.shape[-1]
    s = (1 / scales if inverse else scales)[:, None, :]  # [pos, 1, half]
    return torch.cat([x[..., :half] * s, x[..., half : 2 * half] * s, x[..., 2 * half :]], dim=-1)


def alibi_slopes(n_heads: int) -> Float[Tensor, " head"]:
    """Geometric slopes 2^(-8/n), 2^(-16/n), ...; for n not a power of two, the slopes of the
    nearest lower power of two followed by every other slope of twice that (Press et al.)."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(closest)
    if closest < n_heads:
        slopes += power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes)


def alibi_bias(
    slopes: Float[Tensor, " head"], n_query: int, n_key: int, causal: bool
) -> Float[Tensor, "head query_pos key_pos"]:
    """-slope * distance; the distance is q - k when causal and |q - k| when bidirectional.
    The queries are the last `n_query` of the keys' positions."""
    q = torch.arange(n_key - n_query, n_key, device=slopes.device)[:, None]
    k = torch.arange(n_key, device=slopes.device)[None, :]
    dist = (q - k).clamp(min=0) if causal else (q - k).abs()
    return -slopes[:, None, None] * dist.to(slopes.dtype)


def t5_buckets(
    n_query: int,
    n_key: int,
    bidirectional: bool,
    n_buckets: int,
    max_distance: int,
    device: torch.device | None = None,
) -> Int[Tensor, "query_pos key_pos"]:
    """Bucket of each (query, key) offset: exact for small distances, logarithmic up to
    `max_distance`, then the last bucket. Bidirectional models spend half the buckets on keys
    after the query; causal ones only look back."""
    offset = (
        torch.arange(n_key, device=device)[None, :] - torch.arange(n_query, device=device)[:, None]
    )
    bucket = torch.zeros_like(offset)
    if bidirectional:
        n_buckets //= 2
        bucket = bucket + (offset > 0).long() * n_buckets
        distance = offset.abs()
    else:
        distance = (-offset).clamp(min=0)
    exact = n_buckets // 2
    log_ratio = torch.log(distance.clamp(min=1).double() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (n_buckets - exact)).long()).clamp(max=n_buckets - 1)
    return bucket + torch.where(distance < exact, distance, far)


class FireBias(nn.Module):
    """FIRE: a 2-layer MLP (hidden 32, ReLU) from the normalised log distance to one bias per
    head; c and the threshold L are learned. Causal: only keys at or before the query."""

    def __init__(self, n_heads: int, n_ctx: int, hidden: int = 32) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(1, hidden))
        self.b_in = nn.Parameter(torch.zeros(hidden))
        self.W_out = nn.Parameter(torch.empty(hidden, n_heads))
        self.b_out = nn.Parameter(torch.zeros(n_heads))
        self.c = nn.Parameter(torch.tensor(0.1))
        self.threshold = nn.Parameter(torch.tensor(float(n_ctx)))

    def forward(self, n_query: int, n_key: int) -> Float[Tensor, "head query_pos key_pos"]:
        device = self.c.device
        q = torch.arange(n_query, device=device, dtype=self.c.dtype)[:, None]
        k = torch.arange(n_key, device=device, dtype=self.c.dtype)[None, :]
        c = self.c.abs()
        distance = torch.log(c * (q - k).clamp(min=0) + 1)
        scale = torch.log(c * torch.maximum(self.threshold.abs(), q) + 1)
        x = (distance / scale)[..., None]  # [query, key, 1]
        return (torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out).permute(2, 0, 1)


def abacus_positions(tokens: Int[Tensor, "batch pos"], digits: Tensor) -> Int[Tensor, "batch pos"]:
    """1, 2, 3, ... along each run of consecutive digit tokens; 0 for every other token."""
    is_digit = torch.isin(tokens, digits)
    count = is_digit.long().cumsum(dim=1)
    # the count just before the current run started, carried along the run
    start = torch.where(is_digit, 0, count).cummax(dim=1).values
    return torch.where(is_digit, count - start, 0)
