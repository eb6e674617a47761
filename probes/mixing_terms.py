"""The factors of the effective mixing matrix of the attention kinds without a softmax, for
one head and query (the neuron view's mixing kinds; `probes.scores` is the entry point):

- linear (Katharopoulos et al. 2020): A_ij = phi(q_i).phi(k_j) / sum_l phi(q_i).phi(k_l),
  phi = elu + 1;
- gated linear, GLA (Yang et al. 2024): A_ij = sum_e q_ie k_je prod_(l in (j, i]) alpha_le;
- DeltaNet (Schlag et al. 2021; Yang et al. 2024): A = M T with M_ij = q_i.k_j (j <= i) for
  unit q and k, T = (I + diag(beta) L)^-1 diag(beta), L_tj = k_t.k_j (j < t);
- pooling (Yu et al. 2022): the fixed row of AvgPool - I.

Each function returns the `ScoreTerms` fields of its kind, in float64 from the model's hooks,
and the size of what each key's score sums (for the rounding the check against the model
allows)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import ActivationCache

from workbench import names
from workbench.config import Mask, ModelConfig
from workbench.functional import pooling_matrix
from workbench.options import Patches, Pooling


def linear_terms(
    cfg: ModelConfig,
    cache: ActivationCache,
    layer: int,
    head: int,
    query: int,
    q: Float[Tensor, " d_head"],
    k: Float[Tensor, "key_pos d_head"],
    masked: Bool[Tensor, " key_pos"],
) -> tuple[dict, Float[Tensor, " key_pos"]]:
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    product = phi_q[None, :] * phi_k
    kernel = product.sum(-1).masked_fill(masked, 0.0)
    normaliser = float(kernel.sum())
    return dict(
        vectors="then the feature maps phi(q), phi(k), phi = elu + 1",
        combine="kernel / its row sum (the normaliser)",
        query_vector=phi_q,
        key_vectors=phi_k,
        product=product,
        scale=1.0,
        terms={"kernel": kernel.masked_fill(masked, torch.nan)},
        masked=masked,
        scores=kernel,
        pattern=kernel / normaliser,
        normaliser=normaliser,
    ), product.abs().sum(-1)


def gla_terms(
    cfg: ModelConfig,
    cache: ActivationCache,
    layer: int,
    head: int,
    query: int,
    q: Float[Tensor, " d_head"],
    k: Float[Tensor, "key_pos d_head"],
    masked: Bool[Tensor, " key_pos"],
) -> tuple[dict, Float[Tensor, " key_pos"]]:
    alpha = cache[names.attn(layer, "decay")][0, :, head].detach().cpu().double()  # [pos, e]
    cum = alpha.log().cumsum(0)
    decay = (cum[query] - cum).exp().masked_fill(masked[:, None], 0.0)  # prod over (j, i]
    product = q[None, :] * k * decay
    kernel = product.sum(-1)
    return dict(
        vectors="decay[j, e] = prod over l in (j, i] of alpha_le",
        combine="none: the decayed kernel is the mixing row",
        query_vector=q,
        key_vectors=k,
        product=product,
        scale=1.0,
        terms={"kernel": kernel.masked_fill(masked, torch.nan)},
        masked=masked,
        scores=kernel,
        pattern=kernel,
        decay=decay,
    ), (product.abs() * (1 + cum[query].abs() + cum.abs())).sum(-1)  # the model subtracts sums


def delta_terms(
    cfg: ModelConfig,
    cache: ActivationCache,
    layer: int,
    head: int,
    query: int,
    q: Float[Tensor, " d_head"],
    k: Float[Tensor, "key_pos d_head"],
    masked: Bool[Tensor, " key_pos"],
) -> tuple[dict, Float[Tensor, " key_pos"]]:
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    beta = cache[names.attn(layer, "beta")][0, :, head].detach().cpu().double()  # [pos]
    n = k.shape[0]
    lhs = torch.eye(n, dtype=k.dtype) + beta[:, None] * (k @ k.T).tril(-1)
    transfer = torch.linalg.solve_triangular(lhs, torch.diag(beta), upper=False, unitriangular=True)
    product = q[None, :] * k
    m = product.sum(-1).masked_fill(masked, 0.0)
    return dict(
        vectors="then normalised to unit length",
        combine="M_i T with T = (I + diag(beta) L)^-1 diag(beta), L_tj = k_t.k_j (j < t)",
        query_vector=q,
        key_vectors=k,
        product=product,
        scale=1.0,
        terms={"M = q.k": m.masked_fill(masked, torch.nan)},
        masked=masked,
        scores=m,
        pattern=m @ transfer,
        transfer=transfer,
    ), product.abs().sum(-1)


def pooling_row(cfg: ModelConfig, n: int, query: int) -> Float[Tensor, " key_pos"]:
    """Row `query` of the pooling mixer AvgPool - I over `n` positions."""
    grid = cfg.input.side if isinstance(cfg.input, Patches) else None
    assert isinstance(cfg.attention, Pooling)
    causal = cfg.mask is Mask.CAUSAL
    return pooling_matrix(n, cfg.attention.size, causal, grid, dtype=torch.float64)[query]
