"""Softmax attention: multi-head, grouped-query and multi-query (Vaswani et al. 2017;
Ainslie et al. 2023, "GQA"; Shazeer 2019, "Fast Transformer Decoding"), causal or
bidirectional, optionally restricted to a sliding window, with rotary, ALiBi or T5-bucket
positions where the config asks for them; and the other kinds of `AttentionKind`.

The reduced forms of Bermeitinger et al. 2024 ("Reducing the Transformer Architecture to a
Minimum") are options: a collapsed W_QK per head (hook_q holds x W_QK, hook_k the input x,
both [batch, pos, head, d_model]), a symmetric W_QK stored as its upper triangle, and no value
or output projection (`value_output=False`: head h reads and writes the h-th d_head slice;
W_V and W_O are then fixed identity slices, kept as buffers so `attn.W_O` still reads right).
Structured head mixing (Kerce & Fox 2026) is `MixedHeadsAttention`, whose `W_O` is the
effective [head, d_head, d_model] matrix built from a head-by-head matrix or per-head blocks.

Split inputs: the query, key and value inputs may each be given per head, [batch, pos, head,
d_model] (kv_head for keys and values), so that each head reads its own version of the
residual stream (edge patching); gates read the query input of their head. When only a few
(row, head) pairs read something of their own, `SparseHeadInputs` holds the shared input once
plus those pairs, and the projections compute the shared part once.

Every intermediate is a hook point. The per-head result `hook_result` ([batch, pos, head,
d_model]) costs memory, so it is computed only when something hooks or caches it; the output
is the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from workbench.components.cache import KVCache
from workbench.components.hooks import HookPoint
from workbench.components.module import PlainAttributes
from workbench.components.pooling import pooling_matrix
from workbench.components.positional import (
    FireBias,
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    apply_xpos,
    rotary_angles,
    t5_buckets,
    xpos_scales,
)
from workbench.components.softmax import softmax
from workbench.config import (
    HeadMixing,
    Mask,
    ModelConfig,
    QKForm,
)
from workbench.options import (
    ALiBi,
    ClippedSoftmax,
    Delta,
    Fire,
    Forgetting,
    GatedLinear,
    Linear,
    Patches,
    Pooling,
    Rotary,
    Shaw,
    Sinkhorn,
    Softmax,
    T5Buckets,
    XPos,
)

PER_HEAD = ("batch", "pos", "head", "d_head")
PER_KV_HEAD = ("batch", "pos", "kv_head", "d_head")
MATRIX = ("batch", "head", "query_pos", "key_pos")


@dataclass(frozen=True)
class Sequences:
    """What attention needs to know of a batch, computed once per forward pass: which
    (query, key) pairs padding hides, each token's position (learned, rotary), and the key/value
    cache of the positions before these (whose count offsets the positions)."""

    padding: Bool[Tensor, "batch 1 query_pos key_pos"] | None = None
    position_ids: Int[Tensor, "batch pos"] | None = None
    cache: KVCache | None = None
    offset: int = 0  # positions already in the cache

    @classmethod
    def of(
        cls, valid: Bool[Tensor, "batch pos"] | None, position_ids: Int[Tensor, "batch pos"] | None
    ) -> Sequences:
        """From the real-token mask: padding keys are hidden, a padding query sees itself."""
        if valid is None:
            return cls(None, position_ids)
        n = valid.shape[1]
        itself = torch.eye(n, dtype=torch.bool, device=valid.device)
        return cls(~valid[:, None, None, :] & ~itself, position_ids)


NO_PADDING = Sequences()


@dataclass(frozen=True)
class SparseHeadInputs:
    """Per-head inputs where every head reads `shared` except the (row, head) pairs listed,
    which read their own `values`: the same numbers as the dense [batch, pos, head, d_model]
    form (`dense()`) at the cost of the pairs alone."""

    shared: Float[Tensor, "batch pos d_model"]
    rows: Int[Tensor, " pair"]
    heads: Int[Tensor, " pair"]
    values: Float[Tensor, "pair pos d_model"]
    n_heads: int

    def map(self, fn: Callable[[Tensor], Tensor]) -> SparseHeadInputs:
        """The same pairs with a position-wise function (a norm) applied to every input."""
        return SparseHeadInputs(
            fn(self.shared), self.rows, self.heads, fn(self.values), self.n_heads
        )

    def tail(self, n: int) -> SparseHeadInputs:
        """The same inputs at the last `n` positions only."""
        first = self.shared.shape[1] - n
        return SparseHeadInputs(
            self.shared[:, first:], self.rows, self.heads, self.values[:, first:], self.n_heads
        )

    def dense(self) -> Float[Tensor, "batch pos head d_model"]:
        out = self.shared[:, :, None, :].repeat(1, 1, self.n_heads, 1)
        out[self.rows, :, self.heads] = self.values
        return out


class Attention(PlainAttributes, nn.Module):
    """Attention of every kind in `AttentionKind`. The kinds share projections, positions and
    output; they differ in how scores become the token-mixing pattern (`_mix`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, kv, d, dh = cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head
        self.n_heads, self.kv_heads, self.d_head, self.d_model = h, kv, dh, d
        self.kind = cfg.attention
        self.biased = cfg.bias  # without biases, skip adding the zero b_Q, b_K, b_V, b_O
        self.causal = cfg.mask is Mask.CAUSAL
        self.window = cfg.window
        self.symmetric = cfg.qk_form is QKForm.SHARED  # the keys serve as queries
        self.qk_form = cfg.qk_form
        self.mixing = cfg.head_mixing
        if isinstance(self.kind, Pooling):
            side = cfg.input.side if isinstance(cfg.input, Patches) else None
            self.pool = (cfg.attention.size, side)
        elif self.qk_form in (QKForm.SEPARATE, QKForm.SHARED):
            if not self.symmetric:
                self.W_Q = nn.Parameter(torch.empty(h, d, dh))
                self.b_Q = nn.Parameter(torch.zeros(h, dh), requires_grad=cfg.bias)
            self.W_K = nn.Parameter(torch.empty(kv, d, dh))
            self.b_K = nn.Parameter(torch.zeros(kv, dh), requires_grad=cfg.bias)
        elif self.qk_form is QKForm.COLLAPSED:
            self.W_QK = nn.Parameter(torch.empty(h, d, d))
        else:  # symmetric: the upper triangle (diagonal included) of each head's W_QK
            self.register_buffer("triu", torch.triu_indices(d, d), persistent=False)
            self.W_QK_upper = nn.Parameter(torch.empty(h, d * (d + 1) // 2))
        if cfg.value_output:
            self.W_V = nn.Parameter(torch.empty(kv, d, dh))
            self.b_V = nn.Parameter(torch.zeros(kv, dh), requires_grad=cfg.bias)
            self.b_O = nn.Parameter(torch.zeros(d), requires_grad=cfg.bias)
        else:  # head h reads and writes the slice [h * d_head, (h + 1) * d_head)
            slices = torch.eye(d).reshape(d, h, dh)
            self.register_buffer("W_V", slices.permute(1, 0, 2).contiguous(), persistent=False)
            self.register_buffer("W_O", slices.permute(1, 2, 0).contiguous(), persistent=False)
            self.register_buffer("b_V", torch.zeros(h, dh), persistent=False)
            self.register_buffer("b_O", torch.zeros(d), persistent=False)
        if cfg.value_output and self.mixing is HeadMixing.DENSE:
            self.W_O = nn.Parameter(torch.empty(h, dh, d))  # else: identity slices or mixing
        if not isinstance(self.kind, Pooling):  # the collapsed forms hook x W_QK and x
            width = "d_model" if self.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC) else None
            self.hook_q = HookPoint("batch", "pos", "head", width or "d_head")
            self.hook_k = HookPoint(
                "batch", "pos", "head" if width else "kv_head", width or "d_head"
            )
            self.hook_attn_scores = HookPoint(*MATRIX)
        self.hook_v = HookPoint("batch", "pos", "kv_head", "d_head")
        self.hook_pattern = HookPoint(*MATRIX)
        self.hook_z = HookPoint(*PER_HEAD)
        self.hook_result = HookPoint("batch", "pos", "head", "d_model")
        pos = cfg.pos
        self.rotary = isinstance(pos, Rotary)
        self.xpos = isinstance(pos, XPos)
        if isinstance(pos, XPos):
            scales = xpos_scales(cfg.n_ctx, pos.dims(dh), pos.scale_base)
            self.register_buffer("xpos_scale", scales, persistent=False)
        if isinstance(pos, Rotary):
            self.hook_rot_q = HookPoint(*PER_HEAD)
            self.hook_rot_k = HookPoint(*PER_KV_HEAD)
            cos, sin = rotary_angles(cfg.n_ctx, pos.dims(dh), pos.base)
            self.register_buffer("rot_cos", cos, persistent=False)
            self.register_buffer("rot_sin", sin, persistent=False)
        self.t5_bias = isinstance(pos, T5Buckets)
        if isinstance(pos, T5Buckets):
            self.rel_bias = nn.Parameter(torch.zeros(pos.buckets, h))  # [bucket, head]
            self.rel_max_distance = pos.max_distance
            self.hook_rel_bias = HookPoint("head", "query_pos", "key_pos")
        self.fire = FireBias(h, cfg.n_ctx) if isinstance(cfg.pos, Fire) else None
        if self.fire is not None:
            self.hook_rel_bias = HookPoint("head", "query_pos", "key_pos")
        self.shaw = isinstance(cfg.pos, Shaw)
        if isinstance(pos, Shaw):  # one table per layer, shared by the heads, as in the paper
            self.shaw_max = pos.max_distance
            self.shaw_k = nn.Parameter(torch.zeros(2 * pos.max_distance + 1, dh))
            self.shaw_v = nn.Parameter(torch.zeros(2 * pos.max_distance + 1, dh))
            self.hook_rel_scores = HookPoint(*MATRIX)
            self.hook_rel_values = HookPoint(*PER_HEAD)
        self.alibi = isinstance(cfg.pos, ALiBi)
        if self.alibi:
            self.register_buffer("alibi_slopes", alibi_slopes(h), persistent=False)
        if isinstance(self.kind, Forgetting):
            self.W_F = nn.Parameter(torch.empty(d, h))
            self.b_F = nn.Parameter(torch.full((h,), 3.0))  # start near f = 1: little forgetting
            self.hook_forget_gate = HookPoint("batch", "pos", "head")
        if isinstance(self.kind, GatedLinear):
            self.W_alpha = nn.Parameter(torch.empty(d, h, dh))
            self.b_alpha = nn.Parameter(torch.full((h, dh), 3.0))  # start near alpha = 1
            self.hook_decay = HookPoint(*PER_HEAD)
        if isinstance(self.kind, Delta):
            self.W_beta = nn.Parameter(torch.empty(d, h))
            self.b_beta = nn.Parameter(torch.zeros(h))
            self.hook_beta = HookPoint("batch", "pos", "head")
        self.kv_shift = cfg.kv_shift
        if self.kv_shift:  # [this position, previous position] weights per KV head
            self.shift_k = nn.Parameter(torch.tensor([[1.0], [0.0]]).repeat(1, kv))
            self.shift_v = nn.Parameter(torch.tensor([[1.0], [0.0]]).repeat(1, kv))
            self.hook_shifted_k = HookPoint(*PER_KV_HEAD)
            self.hook_shifted_v = HookPoint(*PER_KV_HEAD)
        self.momentum = cfg.momentum
        if self.momentum is not None:
            self.hook_momentum_q = HookPoint(*PER_HEAD)
            self.hook_momentum_k = HookPoint(*PER_KV_HEAD)
        self.gated = cfg.attn_gate
        if self.gated:
            self.W_G = nn.Parameter(torch.empty(d, h))
            self.b_G = nn.Parameter(torch.zeros(h))
            self.hook_gate = HookPoint("batch", "pos", "head")

    def forward(
        self,
        q_in: Float[Tensor, "batch pos d_model"],
        k_in: Float[Tensor, "batch pos d_model"] | None = None,
        v_in: Float[Tensor, "batch pos d_model"] | None = None,
        *,
        seqs: Sequences = NO_PADDING,
        layer: int = 0,
    ) -> Float[Tensor, "batch pos d_model"]:
        """`layer` names this attention's entry in `seqs.cache`, if there is one."""
        k_in = q_in if k_in is None else k_in
        v_in = q_in if v_in is None else v_in
        if isinstance(self.kind, Pooling):
            v = self._values(v_in)
            size, grid = self.pool
            mixing = pooling_matrix(v.shape[1], size, self.causal, grid, v.device, v.dtype)
            pattern = self.hook_pattern(mixing.expand(v.shape[0], self.n_heads, -1, -1))
            return self._output(q_in, torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        q, k = self._queries_keys(q_in, k_in)
        v = self._values(v_in)
        if self.kv_shift:  # Xu et al. 2024: x'_t = w0 x_t + w1 x_(t-1), per KV head
            k = self.hook_shifted_k(
                self.shift_k[0, :, None] * k + self.shift_k[1, :, None] * _previous(k)
            )
            v = self.hook_shifted_v(
                self.shift_v[0, :, None] * v + self.shift_v[1, :, None] * _previous(v)
            )
        if self.rotary:  # the queries are the last of the keys' positions
            nq, n = q.shape[1], k.shape[1]
            start = seqs.offset
            if seqs.position_ids is None:
                at, q_at = slice(start, start + n), slice(start + n - nq, start + n)
            else:
                at, q_at = seqs.position_ids, seqs.position_ids[:, n - nq :]
            q = apply_rotary(q, self.rot_cos[q_at], self.rot_sin[q_at])
            k = apply_rotary(k, self.rot_cos[at], self.rot_sin[at])
            if self.xpos:
                q = apply_xpos(q, self.xpos_scale[n - nq : n], inverse=False)
                k = apply_xpos(k, self.xpos_scale[:n], inverse=True)
            q, k = self.hook_rot_q(q), self.hook_rot_k(k)
        if self.momentum is not None:  # Maitra 2026: shear by the velocity x_t - x_(t-1)
            q = self.hook_momentum_q(q + self.momentum * (q - _previous(q, repeat_first=True)))
            k = self.hook_momentum_k(k + self.momentum * (k - _previous(k, repeat_first=True)))
        if seqs.cache is not None:  # keys and values of the cached prefix come first
            k, v = seqs.cache.extend(layer, k, v)
        group = self.n_heads // self.kv_heads
        if group > 1:  # grouped-query: query head h reads key/value head h // group
            k = k.repeat_interleave(group, dim=2)
            v = v.repeat_interleave(group, dim=2)
        pattern = self.hook_pattern(self._mix(q, k, q_in, seqs.padding))
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        if self.shaw:  # Shaw et al. 2018: z_i += sum_j a_ij w^V_clip(j - i)
            table = self.shaw_v[self._shaw_index(pattern.shape[-2], pattern.shape[-1], z.device)]
            z = z + self.hook_rel_values(torch.einsum("bhqk,qke->bqhe", pattern, table))
        return self._output(q_in, z)

    def _values(
        self, v_in: Float[Tensor, "batch pos d_model"]
    ) -> Float[Tensor, "batch pos kv_head d_head"]:
        return self.hook_v(self._project(v_in, self.W_V, self.b_V))

    def _queries_keys(
        self, q_in: Float[Tensor, "batch pos d_model"], k_in: Float[Tensor, "batch pos d_model"]
    ) -> tuple[Float[Tensor, "batch pos head _"], Float[Tensor, "batch pos head _"]]:
        """Queries and keys as hooked: [.., d_head] separate, [.., d_model] collapsed."""
        if self.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC):  # x_i W_QK x_j^T: keys are x
            q = self.hook_q(_per_head(q_in, self.qk_matrix()))
            if isinstance(k_in, SparseHeadInputs):
                k_in = k_in.dense()
            if k_in.ndim == 3:
                k_in = k_in[:, :, None, :].expand(-1, -1, self.n_heads, -1)
            return q, self.hook_k(k_in)
        k = self._project(k_in, self.W_K, self.b_K)
        if self.symmetric:  # Borji 2023, Key-Value Transformer: the keys serve as queries
            shared = q_in.shared if isinstance(q_in, SparseHeadInputs) else q_in
            q = self.hook_q(k[:, k.shape[1] - shared.shape[1] :])
        else:
            q = self.hook_q(self._project(q_in, self.W_Q, self.b_Q))
        return q, self.hook_k(k)

    def qk_matrix(self) -> Float[Tensor, "head d_model d_model"]:
        """The bilinear form of the scores, W_Q W_K^T per head (computed for the separate
        form, the parameter itself when collapsed, assembled from the triangle if symmetric)."""
        match self.qk_form:
            case QKForm.COLLAPSED:
                return self.W_QK
            case QKForm.SYMMETRIC:
                h, d = self.W_QK_upper.shape[0], self.d_model
                upper = self.W_QK_upper.new_zeros(h, d, d)
                upper[:, self.triu[0], self.triu[1]] = self.W_QK_upper
                return upper + upper.triu(1).transpose(1, 2)
            case QKForm.SEPARATE | QKForm.SHARED:
                w_q = self.W_K if self.symmetric else self.W_Q
                group = self.n_heads // self.kv_heads
                return w_q @ self.W_K.repeat_interleave(group, dim=0).transpose(1, 2)

    def _output(
        self, q_in: Float[Tensor, "batch pos d_model"], z: Float[Tensor, "batch pos head d_head"]
    ) -> Float[Tensor, "batch pos d_model"]:
        if self.gated:  # Bondarenko et al. 2023: a head can output nothing, without outliers
            z = z * self.hook_gate(torch.sigmoid(_gate(q_in, self.W_G) + self.b_G))[..., None]
        z = self.hook_z(z)
        w_o = self.W_O
        bias = self.b_O if self.biased else None
        if self.hook_result.has_hooks():
            out = self.hook_result(torch.einsum("bqhe,hed->bqhd", z, w_o)).sum(dim=2)
            return out if bias is None else out + bias
        return F.linear(z.flatten(2), w_o.flatten(0, 1).T, bias)

    def _project(
        self,
        x: Float[Tensor, "batch pos d_model"],
        w: Float[Tensor, "head d_model d_head"],
        b: Float[Tensor, "head d_head"],
    ) -> Float[Tensor, "batch pos head d_head"]:
        out = _per_head(x, w)
        return out + b if self.biased else out

    def _mix(
        self,
        q: Float[Tensor, "batch pos head d_head"],
        k: Float[Tensor, "batch pos head d_head"],
        x: Float[Tensor, "batch pos d_model"],
        padding: Bool[Tensor, "batch 1 query_pos key_pos"] | None = None,
    ) -> Float[Tensor, "batch head query_pos key_pos"]:
        """The token-mixing pattern of this kind; the scores hook sees its pre-normalised form."""
        nq, nk = q.shape[1], k.shape[1]
        hidden = attention_mask(nq, nk, self.causal, self.window, q.device)
        if padding is not None:
            hidden = padding if hidden is None else hidden | padding
        match self.kind:
            case Linear():
                # Katharopoulos et al. 2020: phi(q).phi(k) with phi = elu + 1, normalised by row
                kernel = torch.einsum("bqhe,bkhe->bhqk", F.elu(q) + 1, F.elu(k) + 1)
                if hidden is not None:
                    kernel = kernel.masked_fill(hidden, 0.0)
                kernel = self.hook_attn_scores(kernel)
                return kernel / kernel.sum(-1, keepdim=True)
            case GatedLinear():
                return self._gated_linear_mix(q, k, x)
            case Delta():
                return self._delta_mix(q, k, x)
            case Pooling():
                raise AssertionError("pooling mixes without queries and keys (forward)")
            case Softmax() | ClippedSoftmax() | Forgetting() | Sinkhorn():
                scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.d_head)
                scores = self._position_bias(scores, q)
                if isinstance(self.kind, Forgetting):
                    scores = scores + self._forget_bias(x)
                if hidden is not None:
                    scores = scores.masked_fill(hidden, float("-inf"))
                pattern = softmax(self.hook_attn_scores(scores))
                if isinstance(self.kind, ClippedSoftmax):
                    # Bondarenko et al. 2023: exact zeros become reachable
                    gamma, zeta = self.kind.gamma, self.kind.zeta
                    pattern = ((zeta - gamma) * pattern + gamma).clamp(0.0, 1.0)
                if isinstance(self.kind, Sinkhorn):
                    pattern = sinkhorn(pattern, self.kind.iterations)
                return pattern

    def _shaw_index(self, nq: int, nk: int, device: torch.device) -> Tensor:
        offset = torch.arange(nk, device=device)[None, :] - torch.arange(nq, device=device)[:, None]
        return offset.clamp(-self.shaw_max, self.shaw_max) + self.shaw_max  # [query, key]

    def _position_bias(
        self,
        scores: Float[Tensor, "batch head query_pos key_pos"],
        q: Float[Tensor, "batch pos head d_head"],
    ) -> Float[Tensor, "batch head query_pos key_pos"]:
        nq, nk = scores.shape[-2:]
        if self.shaw:  # Shaw et al. 2018: e_ij += q_i . w^K_clip(j - i) / sqrt(d_head)
            table = self.shaw_k[self._shaw_index(nq, nk, scores.device)]  # [query, key, d_head]
            rel = torch.einsum("bqhe,qke->bhqk", q, table) / math.sqrt(self.d_head)
            scores = scores + self.hook_rel_scores(rel)
        if self.alibi:
            scores = scores + alibi_bias(self.alibi_slopes, nq, nk, self.causal)
        if self.fire is not None:
            scores = scores + self.hook_rel_bias(self.fire(nq, nk))
        if self.t5_bias:
            n_buckets = self.rel_bias.shape[0]
            buckets = t5_buckets(
                nq, nk, not self.causal, n_buckets, self.rel_max_distance, scores.device
            )
            scores = scores + self.hook_rel_bias(self.rel_bias[buckets].permute(2, 0, 1))
        return scores

    def _gated_linear_mix(
        self,
        q: Float[Tensor, "batch pos head d_head"],
        k: Float[Tensor, "batch pos head d_head"],
        x: Float[Tensor, "batch pos d_model"],
    ) -> Float[Tensor, "batch head query_pos key_pos"]:
        """GLA, Yang et al. 2024: S_t = diag(alpha_t) S_(t-1) + k_t v_t^T, o_t = S_t^T q_t, so
        o_t = sum_j A_tj v_j with A_tj = sum_e q_te k_je prod_(l in (j, t]) alpha_le. The
        parallel form holds [batch, head, query, key, d_head]: meant for analysis lengths."""
        logits = _per_head(x, self.W_alpha.transpose(0, 1)) + self.b_alpha
        alpha = self.hook_decay(torch.sigmoid(logits) ** (1 / 16))  # tau = 16, as the paper
        cum = torch.log(alpha).cumsum(dim=1)  # [batch, pos, head, d_head]
        n = q.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        decay = (cum[:, :, None] - cum[:, None, :]).masked_fill(
            ~causal[None, :, :, None, None], -torch.inf
        )
        kernel = torch.einsum("bqhe,bkhe,bqkhe->bhqk", q, k, decay.exp())
        return self.hook_attn_scores(kernel)  # GLA has no normaliser: scores = pattern

    def _delta_mix(
        self,
        q: Float[Tensor, "batch pos head d_head"],
        k: Float[Tensor, "batch pos head d_head"],
        x: Float[Tensor, "batch pos d_model"],
    ) -> Float[Tensor, "batch head query_pos key_pos"]:
        """DeltaNet: S_t = S_(t-1) + beta_t (v_t - S_(t-1) k_t) k_t^T, o_t = S_t q_t, with unit
        q and k. Writing S_t = sum_j u_j k_j^T gives (I + diag(beta) L) U = diag(beta) V with
        L_tj = k_t.k_j (j < t), so o = (M T) V with M_tj = q_t.k_j (j <= t) and
        T = (I + diag(beta) L)^-1 diag(beta): M T is the token-mixing matrix."""
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = self.hook_beta(torch.sigmoid(_gate(x, self.W_beta) + self.b_beta))  # [b, pos, head]
        beta = beta.transpose(1, 2)  # [batch, head, pos]
        n = q.shape[1]
        kk = torch.einsum("bthe,bjhe->bhtj", k, k).tril(-1)
        # the solve runs in float32 at least: torch has no half-precision triangular solve
        # (on CPU), and the inverse's long products lose the most precision in fp16/bf16
        work = torch.promote_types(q.dtype, torch.float32)
        eye = torch.eye(n, device=q.device, dtype=work)
        lhs = eye + (beta[..., :, None] * kk).to(work)  # unit lower triangular
        t = torch.linalg.solve_triangular(
            lhs, torch.diag_embed(beta).to(work), upper=False, unitriangular=True
        ).to(q.dtype)
        m = self.hook_attn_scores(torch.einsum("bthe,bjhe->bhtj", q, k).tril())
        return m @ t

    def _forget_bias(
        self, x: Float[Tensor, "batch pos d_model"]
    ) -> Float[Tensor, "batch head query_pos key_pos"]:
        """Lin et al. 2025 (Forgetting Transformer): D_ij = sum over l in (j, i] of log f_l."""
        gate = self.hook_forget_gate(torch.sigmoid(_gate(x, self.W_F) + self.b_F))  # [b, pos, head]
        cum = torch.log(gate).cumsum(dim=1).transpose(1, 2)  # [batch, head, pos]
        return cum[:, :, :, None] - cum[:, :, None, :]


class MixedHeadsAttention(Attention):
    """Attention whose output projection is structured (Kerce & Fox 2026): W_O is built from
    a head-by-head matrix (Kronecker, starting at the identity: every head keeps its channel)
    or from per-head blocks (independent). `W_O` reads as the effective
    [head, d_head, head * d_head] matrix, head g's channel at columns g * d_head onwards."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        if self.mixing is HeadMixing.KRONECKER:
            self.head_mix = nn.Parameter(torch.eye(cfg.n_heads))
        else:
            self.W_O_blocks = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_head, cfg.d_head))

    @property
    def W_O(self) -> Float[Tensor, "head d_head d_model"]:
        if self.mixing is HeadMixing.KRONECKER:  # W[h, e, (g, f)] = M[h, g] delta_ef
            mix = self.head_mix
            eye = torch.eye(self.d_head, device=mix.device, dtype=mix.dtype)
            return torch.einsum("hg,ef->hegf", mix, eye).flatten(2)
        blocks = self.W_O_blocks  # W[h, e, (g, f)] = B[h, e, f] delta_hg
        eye = torch.eye(self.n_heads, device=blocks.device, dtype=blocks.dtype)
        return torch.einsum("hef,hg->hegf", blocks, eye).flatten(2)


Inputs = (
    Float[Tensor, "batch pos d_model"] | Float[Tensor, "batch pos head d_model"] | SparseHeadInputs
)


def _per_head(x: Inputs, w: Float[Tensor, "head d_model e"]) -> Float[Tensor, "batch pos head e"]:
    """Each head's projection of the shared input, or of its own input (split inputs)."""
    if isinstance(x, SparseHeadInputs):
        out = _per_head(x.shared, w)
        out[x.rows, :, x.heads] = torch.einsum("npd,nde->npe", x.values, w[x.heads])
        return out
    return torch.einsum("bpd,hde->bphe" if x.ndim == 3 else "bphd,hde->bphe", x, w)


def _gate(x: Inputs, w: Float[Tensor, "d_model head"]) -> Float[Tensor, "batch pos head"]:
    """Per-head gate logits from the shared input, or from each head's own input."""
    if isinstance(x, SparseHeadInputs):
        out = x.shared @ w
        out[x.rows, :, x.heads] = torch.einsum("npd,dn->np", x.values, w[:, x.heads])
        return out
    return x @ w if x.ndim == 3 else torch.einsum("bphd,dh->bph", x, w)


def sinkhorn(
    pattern: Float[Tensor, "batch head query_pos key_pos"], iterations: int
) -> Float[Tensor, "batch head query_pos key_pos"]:
    """Sinkhorn's algorithm continued from a row-normalised `pattern` (softmax: the first
    iteration): the columns, then the rows, normalised `iterations - 1` more times, in the
    log domain (Sander et al. 2022). Rows end summing to 1; columns tend to 1."""
    if iterations == 1:
        return pattern
    log_p = pattern.log()  # hidden pairs stay at -inf
    for _ in range(iterations - 1):
        log_p = log_p - log_p.logsumexp(dim=-2, keepdim=True)
        log_p = log_p - log_p.logsumexp(dim=-1, keepdim=True)
    return log_p.exp()


def _previous(
    x: Float[Tensor, "batch pos head d_head"], repeat_first: bool = False
) -> Float[Tensor, "batch pos head d_head"]:
    """x shifted one position later; position 0 gets zeros (or itself, with repeat_first)."""
    first = x[:, :1] if repeat_first else torch.zeros_like(x[:, :1])
    return torch.cat([first, x[:, :-1]], dim=1)


def attention_mask(
    n_query: int, n_key: int, causal: bool, window: int | None, device: torch.device
) -> Bool[Tensor, "query_pos key_pos"] | None:
    """True where a query may not attend: the future (causal) and keys `window` or more
    positions away (sliding-window attention, Beltagy et al. 2020, "Longformer"). None when
    every key is visible. The queries are the last `n_query` of the keys' positions (all of
    them, or the positions after a cached prefix)."""
    if not causal and window is None:
        return None
    q = torch.arange(n_key - n_query, n_key, device=device)[:, None]
    k = torch.arange(n_key, device=device)[None, :]
    hidden = k > q if causal else torch.zeros(n_query, n_key, dtype=torch.bool, device=device)
    if window is not None:
        hidden = hidden | ((q - k).abs() >= window)
    return hidden


def make_attention(cfg: ModelConfig) -> nn.Module:
    if cfg.head_mixing is HeadMixing.DENSE:
        return Attention(cfg)
    return MixedHeadsAttention(cfg)
