"""The architecture config: one frozen, keyword-only dataclass with an enum per choice point.

The config describes architecture only (no device, dtype or seed). Every choice point is an
enum handled by a `match` in exactly one factory, so a new member that is not handled fails
loudly at build time.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError, close_matches
from workbench.fields import (
    FiniteFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_checks,
)


class PosEncoding(enum.StrEnum):
    LEARNED = "learned"  # learned absolute embedding (GPT-2, BERT)
    SINUSOIDAL = "sinusoidal"  # fixed sin/cos table (Vaswani et al. 2017)
    ROTARY = "rotary"  # rotary position embedding (Su et al., RoFormer)
    XPOS = "xpos"  # rotary with an exponential decay per frequency (Sun et al. 2022)
    ALIBI = "alibi"  # attention with linear biases (Press et al. 2022)
    T5_BIAS = "t5_bias"  # learned bias per log-bucketed relative position (Raffel et al. 2020)
    SHAW = "shaw"  # learned relative embeddings on keys and values (Shaw et al. 2018)
    FIRE = "fire"  # bias = MLP of the log-normalised distance (Li et al. 2024)
    PEG = "peg"  # vision: depthwise conv over the patch grid after block 0 (Chu et al. 2023)
    ABACUS = "abacus"  # digits embed their place within their number (McLeish et al. 2024)
    NONE = "none"  # no positional information (NoPE)


class InputKind(enum.StrEnum):
    TOKENS = "tokens"  # integer ids [batch, pos] through an embedding matrix
    PATCHES = "patches"  # images [batch, channels, H, W] cut into patches (Dosovitskiy 2021)
    SERIES = "series"  # multivariate series [batch, time, variate], one token per variate


class AttentionKind(enum.StrEnum):
    SOFTMAX = "softmax"  # scaled dot-product softmax attention (Vaswani et al. 2017)
    CLIPPED_SOFTMAX = "clipped_softmax"  # stretched and clipped softmax (Bondarenko et al. 2023)
    FORGETTING = "forgetting"  # softmax with a data-dependent forget gate (Lin et al. 2025)
    LINEAR = "linear"  # kernel feature map elu + 1 (Katharopoulos et al. 2020)
    GATED_LINEAR = "gated_linear"  # GLA: per-key-dimension decay gates (Yang et al. 2024)
    DELTA = "delta"  # DeltaNet: delta-rule state updates (Schlag et al. 2021; Yang et al. 2024)
    POOLING = "pooling"  # PoolFormer's mixer: average of the neighbours minus self (Yu et al. 2022)


class QKForm(enum.StrEnum):
    """How attention scores are parameterised (Bermeitinger et al. 2024, "Reducing the
    Transformer Architecture to a Minimum")."""

    SEPARATE = "separate"  # x_i W_Q (x_j W_K)^T: a query and a key matrix per head
    COLLAPSED = "collapsed"  # x_i W_QK x_j^T: one d_model x d_model matrix per head
    SYMMETRIC = "symmetric"  # collapsed with W_QK = W_QK^T: half the parameters, sim(i,j)=sim(j,i)


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


class MLPKind(enum.StrEnum):
    GELU = "gelu"  # exact, erf form (BERT, ViT, GPT-NeoX)
    GELU_TANH = "gelu_tanh"  # the tanh approximation (GPT-2's "gelu_new", GPT-J)
    RELU = "relu"
    SWIGLU = "swiglu"  # Shazeer 2020, GLU variants: silu(x W_gate) * (x W_in)
    GEGLU = "geglu"  # Shazeer 2020: gelu(x W_gate) * (x W_in)
    REGLU = "reglu"  # Shazeer 2020: relu(x W_gate) * (x W_in)
    TOPK = "topk"  # ReLU keeping the k largest activations per token (Li et al. 2023)
    KAN = "kan"  # group-rational KAN layers instead of fixed activations (Yang & Wang 2025)
    NONE = "none"  # attention-only


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


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture of a hooked transformer. Sizes first, then one field per choice point."""

    n_layers: PositiveInt
    d_model: PositiveInt
    n_heads: PositiveInt
    d_head: PositiveInt
    d_vocab: PositiveInt
    n_ctx: PositiveInt
    d_mlp: NonNegativeInt = 0
    # the logits' width when not d_vocab (compiled RASP programs)
    d_vocab_out: PositiveInt | None = None
    n_kv_heads: PositiveInt | None = None  # None: multi-head; 1: multi-query; else grouped-query
    input: InputKind = InputKind.TOKENS
    image_size: NonNegativeInt = 0  # patches: height = width of the input images
    patch_size: NonNegativeInt = 0  # patches: side of each square patch
    channels: PositiveInt = 1  # patches: image channels
    lookback: NonNegativeInt = 0  # series: time steps embedded per variate (iTransformer)
    pos: PosEncoding = PosEncoding.LEARNED
    attention: AttentionKind = AttentionKind.SOFTMAX
    mask: Mask = Mask.CAUSAL
    mlp: MLPKind = MLPKind.GELU
    norm: Norm = Norm.LAYERNORM
    norm_placement: NormPlacement = NormPlacement.PRE
    wiring: Wiring = Wiring.SEQUENTIAL
    tied_embeddings: bool = False
    bias: bool = True  # biases on attention and MLP projections
    mlp_top_k: PositiveInt | None = None  # with mlp='topk': activations kept per token
    kan_groups: PositiveInt = 8  # with mlp='kan': channels sharing one rational function
    window: PositiveInt | None = None  # sliding-window attention: keys within this many positions
    attn_gate: bool = False  # per-head sigmoid gate on the attention output (Bondarenko 2023)
    kv_shift: bool = False  # keys/values mix in their previous position's (Xu et al. 2024)
    momentum: FiniteFloat | None = None  # q, k += momentum * (x_t - x_(t-1)) (Maitra 2026)
    symmetric_qk: bool = False  # queries are the keys: symmetric scores (Borji 2023)
    qk_form: QKForm = QKForm.SEPARATE
    value_output: bool = True  # False: no W_V and W_O, heads read and write d_head slices
    head_mixing: HeadMixing = HeadMixing.DENSE
    # attention='pooling': the neighbourhood's side (patch grid) or window (tokens)
    pool_size: PositiveInt = 3
    embed_norm: bool = False  # a norm on the embeddings before block 0 (BERT)
    mlm_head: bool = False  # BERT's masked-LM transform (dense, GELU, LayerNorm) before unembed
    depth_weighted: bool = False  # DenseFormer: each block's input averages all earlier outputs
    # layer l runs with the weights of layer weight_ties[l] (<= l): loops and shared layers
    weight_ties: tuple[NonNegativeInt, ...] | None = None
    clip_gamma: FiniteFloat = -0.03  # clipped softmax: clip((zeta - gamma) * softmax + gamma, 0, 1)
    clip_zeta: FiniteFloat = 1.0
    rotary_dim: PositiveInt | None = None  # None: rotate the whole head
    rotary_base: PositiveFloat = 10000.0
    xpos_scale_base: PositiveFloat = 512.0  # xPos: the decay zeta^((n - m) / scale_base)
    digit_tokens: tuple[NonNegativeInt, ...] | None = None  # abacus: the token ids that are digits
    # abacus: in training, each sequence's digit places shift by a random 0..this (McLeish 2024)
    abacus_max_offset: NonNegativeInt = 0
    rel_buckets: PositiveInt = 32  # T5 bias: number of relative-position buckets
    rel_max_distance: PositiveInt = 128  # T5 bias: distances beyond this share the last bucket
    shaw_max_distance: NonNegativeInt = 16  # Shaw: relative distances are clipped to +-this
    norm_eps: PositiveFloat = 1e-5

    def __new__(cls, **fields: Any) -> ModelConfig:
        # before the generated __init__, whose TypeError for an unknown keyword names no field
        if not fields.keys() <= _FIELD_CHECKS.keys():
            _check_names(fields)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        # each field's type and range, from its annotation (workbench.fields); values are
        # normalised as stored (an enum's value string becomes the member, a list a tuple)
        fields = self.__dict__
        for name, check in _FIELD_CHECKS.items():
            value = fields[name]
            checked = check(name, value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        self._validate()

    def _validate(self) -> None:
        """The rules between fields (each field alone is checked from its annotation)."""
        out = self.d_vocab_out
        if self.tied_embeddings and self.vocab_out != self.d_vocab:
            raise ConfigError(
                "tied_embeddings unembed with the token embedding, so d_vocab_out must equal "
                f"d_vocab ({self.d_vocab}) or be None; got {out}"
            )
        if self.mlp is not MLPKind.NONE and self.d_mlp < 1:
            raise ConfigError(f"mlp={self.mlp.value} needs d_mlp >= 1; set d_mlp or mlp='none'")
        if (self.mlp is MLPKind.TOPK) != (self.mlp_top_k is not None):
            raise ConfigError("mlp='topk' and mlp_top_k go together: set both or neither")
        if self.mlp_top_k is not None and not 1 <= self.mlp_top_k <= self.d_mlp:
            raise ConfigError(f"mlp_top_k={self.mlp_top_k} must be in 1..d_mlp={self.d_mlp}")
        if self.mlp is MLPKind.KAN and (
            self.d_model % self.kan_groups or self.d_mlp % self.kan_groups
        ):
            raise ConfigError(
                f"kan_groups={self.kan_groups} must divide d_model={self.d_model} and "
                f"d_mlp={self.d_mlp}"
            )
        if self.embed_norm and not self.has_norm:
            raise ConfigError("embed_norm=True normalises the embeddings: it needs a norm")
        self._validate_attention()
        self._validate_ties()
        self._validate_input()
        self._validate_abacus()
        kv = self.kv_heads
        if kv < 1 or self.n_heads % kv:
            raise ConfigError(
                f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} "
                "(1 for multi-query, n_heads or None for multi-head)"
            )
        if self.pos is PosEncoding.FIRE and self.mask is not Mask.CAUSAL:
            raise ConfigError("pos='fire' normalises by the query position: set mask='causal'")
        if self.pos is PosEncoding.XPOS and self.mask is not Mask.CAUSAL:
            raise ConfigError("pos='xpos' decays with distance to earlier keys: set mask='causal'")
        if self.rotates:
            rd = self.rotary_dims
            if rd % 2 or not 0 < rd <= self.d_head:
                raise ConfigError(
                    f"rotary_dim={self.rotary_dim} must be even and in 1..d_head={self.d_head}"
                )
        if self.pos is PosEncoding.T5_BIAS and not 4 <= self.rel_buckets <= self.rel_max_distance:
            raise ConfigError(
                f"rel_buckets={self.rel_buckets} must be >= 4 and <= rel_max_distance="
                f"{self.rel_max_distance}"
            )
        if self.wiring is Wiring.PARALLEL and self.norm_placement is NormPlacement.POST:
            raise ConfigError("parallel wiring needs norm_placement='pre' (no post-norm variant)")
        if self.wiring is Wiring.DUAL_STREAM and (
            self.norm_placement is NormPlacement.POST
            or not self.has_mlp
            or self.depth_weighted
            or self.pos is PosEncoding.PEG
        ):
            raise ConfigError(
                "wiring='dual_stream' needs norm_placement='pre', an MLP (it writes the context "
                "stream), no depth_weighted averaging and no pos='peg'"
            )

    def _validate_abacus(self) -> None:
        if self.pos is not PosEncoding.ABACUS:
            if self.abacus_max_offset:
                raise ConfigError("abacus_max_offset shifts abacus digit places: set pos='abacus'")
            return
        if not self.digit_tokens or self.input is not InputKind.TOKENS:
            raise ConfigError("pos='abacus' needs token input and digit_tokens (the digit ids)")
        if not all(t < self.d_vocab for t in self.digit_tokens):
            raise ConfigError(f"digit_tokens must be ids in 0..{self.d_vocab - 1}")

    def _validate_input(self) -> None:
        if self.pos is PosEncoding.PEG and (
            self.input is not InputKind.PATCHES or self.depth_weighted
        ):
            raise ConfigError(
                "pos='peg' convolves the patch grid: it needs input='patches' and no "
                "depth_weighted averaging"
            )
        if self.input is InputKind.SERIES:
            if self.lookback < 1:
                raise ConfigError("input='series' needs lookback >= 1 (time steps per variate)")
            if self.tied_embeddings:
                raise ConfigError("series inputs have no token embedding to tie")
        if self.input is not InputKind.PATCHES:
            return
        size, patch = self.image_size, self.patch_size
        if patch < 1 or size < patch or size % patch:
            raise ConfigError(
                f"input='patches' needs patch_size >= 1 dividing image_size, got image_size="
                f"{size}, patch_size={patch}"
            )
        if self.n_ctx != self.n_patches + 1:
            raise ConfigError(
                f"a {size}x{size} image in {patch}x{patch} patches gives {self.n_patches} "
                f"patches plus the class token: set n_ctx={self.n_patches + 1}, not {self.n_ctx}"
            )
        if self.tied_embeddings:
            raise ConfigError("image inputs have no token embedding to tie: tied_embeddings=False")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2 if self.patch_size else 0

    def _validate_ties(self) -> None:
        ties = self.weight_ties
        if ties is None:
            return
        if len(ties) != self.n_layers:
            raise ConfigError(
                f"weight_ties has {len(ties)} entries; it needs one per layer (n_layers="
                f"{self.n_layers})"
            )
        for layer, owner in enumerate(ties):
            if not (owner <= layer and ties[owner] == owner):
                raise ConfigError(
                    f"weight_ties[{layer}]={owner!r}: a layer can only reuse the weights of "
                    "itself or of an earlier layer that owns its weights (ties[owner] == owner)"
                )

    def _validate_attention(self) -> None:
        kind = self.attention
        self._validate_reduced_attention()
        if kind is AttentionKind.FORGETTING and self.mask is not Mask.CAUSAL:
            raise ConfigError("attention='forgetting' is causal by construction; set mask='causal'")
        if self.symmetric_qk and self.n_kv_heads not in (None, self.n_heads):
            raise ConfigError("symmetric_qk uses the keys as queries: it needs n_kv_heads=None")
        if self.momentum is not None and self.mask is not Mask.CAUSAL:
            raise ConfigError("momentum differences each token with its predecessor: mask='causal'")
        recurrent = (AttentionKind.GATED_LINEAR, AttentionKind.DELTA)
        if kind in recurrent and (self.mask is not Mask.CAUSAL or self.window is not None):
            raise ConfigError(
                f"attention='{kind.value}' is a causal recurrence: set mask='causal' and no window"
            )
        linear = (AttentionKind.LINEAR, *recurrent)
        if kind in linear and self.pos in (
            PosEncoding.ALIBI,
            PosEncoding.T5_BIAS,
            PosEncoding.SHAW,
            PosEncoding.FIRE,
        ):
            raise ConfigError(
                f"pos={self.pos.value} adds a bias to softmax scores, which linear attention "
                "does not have; use pos='rotary', 'learned', 'sinusoidal' or 'none'"
            )
        if kind is AttentionKind.CLIPPED_SOFTMAX and not (
            self.clip_gamma <= 0 <= 1 <= self.clip_zeta
        ):
            raise ConfigError(
                f"clipped softmax needs clip_gamma <= 0 and clip_zeta >= 1, got "
                f"{self.clip_gamma} and {self.clip_zeta}"
            )

    def _validate_reduced_attention(self) -> None:
        """qk_form, value_output, head_mixing and the pooling mixer."""
        sliced = self.n_heads * self.d_head == self.d_model
        if (not self.value_output or self.head_mixing is not HeadMixing.DENSE) and not sliced:
            raise ConfigError(
                f"value_output=False and head_mixing='{self.head_mixing.value}' give each head "
                f"a d_head slice of the stream: they need n_heads * d_head == d_model, got "
                f"{self.n_heads} * {self.d_head} != {self.d_model}"
            )
        if not self.value_output and (
            self.head_mixing is not HeadMixing.DENSE or self.n_kv_heads not in (None, self.n_heads)
        ):
            raise ConfigError(
                "value_output=False has no output projection to mix and no value heads to "
                "share: keep head_mixing='dense' and n_kv_heads=None"
            )
        in_attention_pos = (
            PosEncoding.ROTARY,
            PosEncoding.XPOS,
            PosEncoding.ALIBI,
            PosEncoding.T5_BIAS,
            PosEncoding.SHAW,
            PosEncoding.FIRE,
        )
        softmax_kinds = (
            AttentionKind.SOFTMAX,
            AttentionKind.CLIPPED_SOFTMAX,
            AttentionKind.FORGETTING,
        )
        if self.qk_form is not QKForm.SEPARATE and (
            self.attention not in softmax_kinds
            or self.n_kv_heads not in (None, self.n_heads)
            or self.symmetric_qk
            or self.kv_shift
            or self.momentum is not None
            or self.rotates
            or self.pos is PosEncoding.SHAW
        ):
            raise ConfigError(
                f"qk_form='{self.qk_form.value}' scores x_i W_QK x_j^T in model space: it needs "
                "a softmax attention kind, n_kv_heads=None, no symmetric_qk, kv_shift or "
                "momentum, and no rotary, xpos or shaw positions"
            )
        if self.attention is not AttentionKind.POOLING:
            return
        if (
            self.pos in in_attention_pos
            or self.qk_form is not QKForm.SEPARATE
            or self.symmetric_qk
            or self.kv_shift
            or self.momentum is not None
            or self.window is not None
            or self.n_kv_heads not in (None, self.n_heads)
        ):
            raise ConfigError(
                "attention='pooling' has no queries or keys: use an additive pos (or none), "
                "qk_form='separate', n_kv_heads=None, no symmetric_qk, kv_shift, momentum or "
                "window (pool_size sets the neighbourhood)"
            )
        if self.pool_size < 1 or (self.mask is Mask.BIDIRECTIONAL and self.pool_size % 2 == 0):
            raise ConfigError(
                f"pool_size={self.pool_size} must be >= 1, and odd for a centred "
                "(bidirectional) neighbourhood"
            )

    @property
    def vocab_out(self) -> int:
        """The logits' width: d_vocab_out, else d_vocab."""
        return self.d_vocab if self.d_vocab_out is None else self.d_vocab_out

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def kv_sharing(self) -> KVSharing:
        if self.kv_heads == self.n_heads:
            return KVSharing.MULTI_HEAD
        return KVSharing.MULTI_QUERY if self.kv_heads == 1 else KVSharing.GROUPED_QUERY

    @property
    def rotates(self) -> bool:
        return self.pos in (PosEncoding.ROTARY, PosEncoding.XPOS)

    @property
    def rotary_dims(self) -> int:
        return self.d_head if self.rotary_dim is None else self.rotary_dim

    @property
    def has_mlp(self) -> bool:
        return self.mlp is not MLPKind.NONE

    @property
    def gated_mlp(self) -> bool:
        return self.mlp in (MLPKind.SWIGLU, MLPKind.GEGLU, MLPKind.REGLU)

    @property
    def has_norm(self) -> bool:
        return self.norm is not Norm.NONE

    @property
    def has_final_norm(self) -> bool:
        # Post-norm blocks already end normalised; pre-norm stacks need a final norm.
        return self.has_norm and self.norm_placement is NormPlacement.PRE

    @property
    def additive_pos(self) -> bool:
        return self.pos in (PosEncoding.LEARNED, PosEncoding.SINUSOIDAL, PosEncoding.ABACUS)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)  # unknown names: __new__

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"config is incomplete: {exc}") from None


_FIELD_CHECKS = field_checks(ModelConfig)


def _check_names(fields: dict[str, Any]) -> None:
    """Raise `ConfigError` naming the closest fields for any name that is not a field."""
    unknown = sorted(set(fields) - _FIELD_CHECKS.keys())
    if unknown:
        hints = "; ".join(
            f"{u!r}: did you mean {close_matches(u, _FIELD_CHECKS)}?" for u in unknown
        )
        raise ConfigError(f"unknown config field(s): {hints}")
