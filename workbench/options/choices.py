"""The config's choices without parameters: plain enums (a typed option would own nothing)."""

from __future__ import annotations

import enum


class QKForm(enum.StrEnum):
    """How attention scores are parameterised (Bermeitinger et al. 2024, "Reducing the
    Transformer Architecture to a Minimum"; Borji 2023 for shared)."""

    SEPARATE = "separate"  # x_i W_Q (x_j W_K)^T: a query and a key matrix per head
    SHARED = "shared"  # W_Q = W_K: the keys serve as queries, symmetric scores (Borji 2023)
    COLLAPSED = "collapsed"  # x_i W_QK x_j^T: one d_model x d_model matrix per head
    SYMMETRIC = "symmetric"  # collapsed with W_QK = W_QK^T: half the parameters


class HeadMixing(enum.StrEnum):
    """How heads write to the stream (Kerce & Fox 2026, the Dual-Stream Transformer): the
    output projection is dense, (W_heads kron I_d_head), or block-diagonal (head h writes only
    its own d_head channel). The last two need n_heads * d_head == d_model."""

    DENSE = "dense"
    KRONECKER = "kronecker"  # heads exchange scalars: channel g gets sum_h M[h, g] z_h
    INDEPENDENT = "independent"  # channel h gets z_h W_h: no communication between heads


class KVSharing(enum.Enum):
    """How query heads share key/value heads; derived from `n_kv_heads`."""

    MULTI_HEAD = "multi-head"
    GROUPED_QUERY = "grouped-query"  # Ainslie et al. 2023
    MULTI_QUERY = "multi-query"  # Shazeer 2019


class Mask(enum.StrEnum):
    CAUSAL = "causal"
    BIDIRECTIONAL = "bidirectional"


class Norm(enum.StrEnum):
    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"  # Zhang & Sennrich 2019
    NONE = "none"


class NormPlacement(enum.StrEnum):
    PRE = "pre"  # normalise the input of each sublayer (GPT-2)
    POST = "post"  # normalise the residual after each sublayer (Vaswani et al. 2017)


class Wiring(enum.StrEnum):
    SEQUENTIAL = "sequential"  # x + attn, then + mlp
    PARALLEL = "parallel"  # x + attn(x) + mlp(x) (GPT-J, GPT-NeoX)
    # two streams, token (written by attention) and context (written by the MLP); both sublayers
    # read their sum (Kerce & Fox 2026, "The Dual-Stream Transformer")
    DUAL_STREAM = "dual_stream"
