"""Attention: multi-head, grouped-query and multi-query (Vaswani et al. 2017; Ainslie et al.
2023, "GQA"; Shazeer 2019, "Fast Transformer Decoding"), causal or bidirectional, optionally
restricted to a sliding window. What differs between kinds is a small component each: the
token mixer the attention kind selects (`workbench/components/mixers/`: softmax, clipped,
forgetting, Sinkhorn, linear, GLA, DeltaNet, pooling) and the positions attention applies
(`workbench/components/positions/`: rotary and xPos, ALiBi, T5, FIRE, Shaw).

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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from workbench.components.cache import KVCache
from workbench.components.hooks import HookPoint
from workbench.components.positional import FireBias
from workbench.config import (
    HeadMixing,
    Mask,
    ModelConfig,
    QKForm,
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


class Attention(nn.Module):
    """Attention of every kind: projections, the kind's token mixer and the position scheme
    inside attention (each a small component the config's options select: `mixers/`,
    `positions/`), gates and shifts, and the output."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h, kv, d, dh = cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head
        self.cfg = cfg  # the layer's config: the settings below read it
        self.mixer = cfg.attention.component(cfg)
        self.positions = cfg.pos.component(cfg)
        if self.mixer.uses_qk:
            self._qk_parameters(cfg)
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
        if self.mixer.uses_qk:  # the collapsed forms hook x W_QK and x
            width = "d_model" if self.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC) else None
            self.hook_q = HookPoint("batch", "pos", "head", width or "d_head")
            self.hook_k = HookPoint(
                "batch", "pos", "head" if width else "kv_head", width or "d_head"
            )
            self.hook_attn_scores = HookPoint(*MATRIX)
        self.hook_v = HookPoint(*PER_KV_HEAD)
        self.hook_pattern = HookPoint(*MATRIX)
        self.hook_z = HookPoint(*PER_HEAD)
        self.hook_result = HookPoint("batch", "pos", "head", "d_model")
        self.positions.install(self)
        self.mixer.install(self)
        if cfg.kv_shift:  # [this position, previous position] weights per KV head
            self.shift_k = nn.Parameter(torch.tensor([[1.0], [0.0]]).repeat(1, kv))
            self.shift_v = nn.Parameter(torch.tensor([[1.0], [0.0]]).repeat(1, kv))
            self.hook_shifted_k = HookPoint(*PER_KV_HEAD)
            self.hook_shifted_v = HookPoint(*PER_KV_HEAD)
        if cfg.momentum is not None:
            self.hook_momentum_q = HookPoint(*PER_HEAD)
            self.hook_momentum_k = HookPoint(*PER_KV_HEAD)
        if cfg.attn_gate:
            self.W_G = nn.Parameter(torch.empty(d, h))
            self.b_G = nn.Parameter(torch.zeros(h))
            self.hook_gate = HookPoint("batch", "pos", "head")

    # what the mixer and the position scheme the config selects install (mixers/, positions/)
    triu: Tensor
    W_F: nn.Parameter
    b_F: nn.Parameter
    hook_forget_gate: HookPoint
    W_alpha: nn.Parameter
    b_alpha: nn.Parameter
    hook_decay: HookPoint
    W_beta: nn.Parameter
    b_beta: nn.Parameter
    hook_beta: HookPoint
    rot_cos: Tensor
    rot_sin: Tensor
    xpos_scale: Tensor
    hook_rot_q: HookPoint
    hook_rot_k: HookPoint
    alibi_slopes: Tensor
    rel_bias: nn.Parameter
    rel_max_distance: int
    hook_rel_bias: HookPoint
    fire: FireBias
    shaw_k: nn.Parameter
    shaw_v: nn.Parameter
    hook_rel_scores: HookPoint
    hook_rel_values: HookPoint

    # the settings, read from the config (assigning each to the module would cost more, in a
    # build of hundreds of small models, than reading them)
    n_heads = property(lambda self: self.cfg.n_heads)
    kv_heads = property(lambda self: self.cfg.kv_heads)
    d_head = property(lambda self: self.cfg.d_head)
    d_model = property(lambda self: self.cfg.d_model)
    kind = property(lambda self: self.cfg.attention)
    biased = property(lambda self: self.cfg.bias)  # False: skip adding zero biases
    causal = property(lambda self: self.cfg.mask is Mask.CAUSAL)
    window = property(lambda self: self.cfg.window)
    qk_form = property(lambda self: self.cfg.qk_form)
    mixing = property(lambda self: self.cfg.head_mixing)
    kv_shift = property(lambda self: self.cfg.kv_shift)
    momentum = property(lambda self: self.cfg.momentum)
    gated = property(lambda self: self.cfg.attn_gate)

    def _qk_parameters(self, cfg: ModelConfig) -> None:
        h, kv, d, dh = cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head
        match self.qk_form:
            case QKForm.SEPARATE | QKForm.SHARED:
                if self.qk_form is QKForm.SEPARATE:  # shared: the keys serve as queries
                    self.W_Q = nn.Parameter(torch.empty(h, d, dh))
                    self.b_Q = nn.Parameter(torch.zeros(h, dh), requires_grad=cfg.bias)
                self.W_K = nn.Parameter(torch.empty(kv, d, dh))
                self.b_K = nn.Parameter(torch.zeros(kv, dh), requires_grad=cfg.bias)
            case QKForm.COLLAPSED:
                self.W_QK = nn.Parameter(torch.empty(h, d, d))
            case QKForm.SYMMETRIC:  # the upper triangle (diagonal included) of each W_QK
                self.register_buffer("triu", torch.triu_indices(d, d), persistent=False)
                self.W_QK_upper = nn.Parameter(torch.empty(h, d * (d + 1) // 2))

    def forward(
        self,
        q_in: Inputs,
        k_in: Inputs | None = None,
        v_in: Inputs | None = None,
        *,
        seqs: Sequences = NO_PADDING,
        layer: int = 0,
    ) -> Float[Tensor, "batch pos d_model"]:
        """`layer` names this attention's entry in `seqs.cache`, if there is one."""
        k_in = q_in if k_in is None else k_in
        v_in = q_in if v_in is None else v_in
        if not self.mixer.uses_qk:
            v = self._values(v_in)
            pattern = self.hook_pattern(self.mixer.fixed_pattern(self, v))
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
        q, k = self.positions.rotate(self, q, k, seqs)
        if self.momentum is not None:  # Maitra 2026: shear by the velocity x_t - x_(t-1)
            q = self.hook_momentum_q(q + self.momentum * (q - _previous(q, repeat_first=True)))
            k = self.hook_momentum_k(k + self.momentum * (k - _previous(k, repeat_first=True)))
        if seqs.cache is not None:  # keys and values of the cached prefix come first
            k, v = seqs.cache.extend(layer, k, v)
        group = self.n_heads // self.kv_heads
        if group > 1:  # grouped-query: query head h reads key/value head h // group
            k = k.repeat_interleave(group, dim=2)
            v = v.repeat_interleave(group, dim=2)
        hidden = attention_mask(q.shape[1], k.shape[1], self.causal, self.window, q.device)
        if seqs.padding is not None:
            hidden = seqs.padding if hidden is None else hidden | seqs.padding
        pattern = self.hook_pattern(self.mixer.mix(self, q, k, q_in, hidden))
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        return self._output(q_in, self.positions.values(self, pattern, z))

    def _values(self, v_in: Inputs) -> Float[Tensor, "batch pos kv_head d_head"]:
        return self.hook_v(self._project(v_in, self.W_V, self.b_V))

    def _queries_keys(
        self, q_in: Inputs, k_in: Inputs
    ) -> tuple[Float[Tensor, "batch query_pos head _"], Float[Tensor, "batch key_pos _ _"]]:
        """Queries and keys as hooked: [.., d_head] separate, [.., d_model] collapsed."""
        if self.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC):  # x_i W_QK x_j^T: keys are x
            q = self.hook_q(per_head(q_in, self.qk_matrix()))
            if isinstance(k_in, SparseHeadInputs):
                k_in = k_in.dense()
            if k_in.ndim == 3:
                k_in = k_in[:, :, None, :].expand(-1, -1, self.n_heads, -1)
            return q, self.hook_k(k_in)
        k = self._project(k_in, self.W_K, self.b_K)
        if self.qk_form is QKForm.SHARED:  # Borji 2023, Key-Value Transformer: keys as queries
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
                w_q = self.W_K if self.qk_form is QKForm.SHARED else self.W_Q
                group = self.n_heads // self.kv_heads
                return w_q @ self.W_K.repeat_interleave(group, dim=0).transpose(1, 2)
        raise AssertionError(f"unhandled qk_form {self.qk_form}")

    def _output(
        self, q_in: Inputs, z: Float[Tensor, "batch pos head d_head"]
    ) -> Float[Tensor, "batch pos d_model"]:
        if self.gated:  # Bondarenko et al. 2023: a head can output nothing, without outliers
            gate = self.hook_gate(torch.sigmoid(gate_logits(q_in, self.W_G) + self.b_G))
            z = z * gate[..., None]
        z = self.hook_z(z)
        w_o = self.W_O
        bias = self.b_O if self.biased else None
        if self.hook_result.has_hooks():
            out = self.hook_result(torch.einsum("bqhe,hed->bqhd", z, w_o)).sum(dim=2)
            return out if bias is None else out + bias
        return F.linear(z.flatten(2), w_o.flatten(0, 1).T, bias)

    def _project(
        self,
        x: Inputs,
        w: Float[Tensor, "head d_model d_head"],
        b: Float[Tensor, "head d_head"],
    ) -> Float[Tensor, "batch pos head d_head"]:
        out = per_head(x, w)
        return out + b if self.biased else out


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


def per_head(x: Inputs, w: Float[Tensor, "head d_model e"]) -> Float[Tensor, "batch pos head e"]:
    """Each head's projection of the shared input, or of its own input (split inputs)."""
    if isinstance(x, SparseHeadInputs):
        out = per_head(x.shared, w)
        out[x.rows, :, x.heads] = torch.einsum("npd,nde->npe", x.values, w[x.heads])
        return out
    return torch.einsum("bpd,hde->bphe" if x.ndim == 3 else "bphd,hde->bphe", x, w)


def gate_logits(x: Inputs, w: Float[Tensor, "d_model head"]) -> Float[Tensor, "batch pos head"]:
    """Per-head gate logits from the shared input, or from each head's own input."""
    if isinstance(x, SparseHeadInputs):
        out = x.shared @ w
        out[x.rows, :, x.heads] = torch.einsum("npd,dn->np", x.values, w[:, x.heads])
        return out
    return x @ w if x.ndim == 3 else torch.einsum("bphd,dh->bph", x, w)


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


def make_attention(cfg: ModelConfig) -> Attention:
    if cfg.head_mixing is HeadMixing.DENSE:
        return Attention(cfg)
    return MixedHeadsAttention(cfg)
