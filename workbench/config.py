"""The architecture config: one frozen, keyword-only dataclass describing a model.

The config describes architecture only (no device, dtype or seed). The choice points with
parameters are typed options (workbench.options: `pos=Rotary(base=500.0)`, `mlp=TopK(k=64)`,
or their JSON forms `pos="rotary"`, `{"kind": "topk", "k": 64}`) that own their parameters and
their rules; the choices without parameters are enums. `layers` overrides the attention kind,
window, positions or MLP at some layers (`layer(l)` is the config layer l is built from).
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
from workbench.options import (
    AttentionKind,
    Gelu,
    InputKind,
    Learned,
    MLPKind,
    Option,
    Patches,
    PosEncoding,
    Softmax,
    Tokens,
    legacy,
)
from workbench.options.choices import (  # the choices without parameters, named here too
    HeadMixing,
    KVSharing,
    Mask,
    Norm,
    NormPlacement,
    QKForm,
    Wiring,
)
from workbench.options.layers import LayerOverride, resolve_layers

__all__ = [
    "HeadMixing",
    "KVSharing",
    "Mask",
    "ModelConfig",
    "Norm",
    "NormPlacement",
    "QKForm",
    "Wiring",
]


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
    input: InputKind = Tokens()  # noqa: RUF009 (options are frozen)
    pos: PosEncoding = Learned()  # noqa: RUF009
    attention: AttentionKind = Softmax()  # noqa: RUF009
    mask: Mask = Mask.CAUSAL
    mlp: MLPKind = Gelu()  # noqa: RUF009
    norm: Norm = Norm.LAYERNORM
    norm_placement: NormPlacement = NormPlacement.PRE
    wiring: Wiring = Wiring.SEQUENTIAL
    tied_embeddings: bool = False
    bias: bool = True  # biases on attention and MLP projections
    window: PositiveInt | None = None  # sliding-window attention: keys within this many positions
    attn_gate: bool = False  # per-head sigmoid gate on the attention output (Bondarenko 2023)
    kv_shift: bool = False  # keys/values mix in their previous position's (Xu et al. 2024)
    momentum: FiniteFloat | None = None  # q, k += momentum * (x_t - x_(t-1)) (Maitra 2026)
    qk_form: QKForm = QKForm.SEPARATE
    value_output: bool = True  # False: no W_V and W_O, heads read and write d_head slices
    head_mixing: HeadMixing = HeadMixing.DENSE
    embed_norm: bool = False  # a norm on the embeddings before block 0 (BERT)
    mlm_head: bool = False  # BERT's masked-LM transform (dense, GELU, LayerNorm) before unembed
    depth_weighted: bool = False  # DenseFormer: each block's input averages all earlier outputs
    # layer l runs with the weights of layer weight_ties[l] (<= l): loops and shared layers
    weight_ties: tuple[NonNegativeInt, ...] | None = None
    norm_eps: PositiveFloat = 1e-5
    layers: tuple[LayerOverride, ...] = ()  # per-layer changes of attention, window, pos, mlp

    def __new__(cls, **fields: Any) -> ModelConfig:
        # before the generated __init__, whose TypeError for an unknown keyword names no field
        if not fields.keys() <= FIELD_CHECKS.keys():
            _check_names(fields)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        # each field's type and range, from its annotation (workbench.fields); values are
        # normalised as stored (an option's kind string becomes the option, a list a tuple)
        fields = self.__dict__
        for name, check in FIELD_CHECKS.items():
            value = fields[name]
            checked = check(name, value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        self._validate()
        for option in (self.input, self.pos, self.attention, self.mlp):
            option.check(self)
        object.__setattr__(self, "_per_layer", resolve_layers(self))

    def _validate(self) -> None:
        """The rules between fields that no single option owns."""
        if self.tied_embeddings and self.vocab_out != self.d_vocab:
            raise ConfigError(
                "tied_embeddings unembed with the token embedding, so d_vocab_out must equal "
                f"d_vocab ({self.d_vocab}) or be None; got {self.d_vocab_out}"
            )
        if self.embed_norm and not self.has_norm:
            raise ConfigError("embed_norm=True normalises the embeddings: it needs a norm")
        kv = self.kv_heads
        if kv < 1 or self.n_heads % kv:
            raise ConfigError(
                f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} "
                "(1 for multi-query, n_heads or None for multi-head)"
            )
        if self.momentum is not None and self.mask is not Mask.CAUSAL:
            raise ConfigError("momentum differences each token with its predecessor: mask='causal'")
        if self.wiring is Wiring.PARALLEL and self.norm_placement is NormPlacement.POST:
            raise ConfigError("parallel wiring needs norm_placement='pre' (no post-norm variant)")
        if self.wiring is Wiring.DUAL_STREAM and (
            self.norm_placement is NormPlacement.POST
            or not self.has_mlp
            or self.depth_weighted
            or self.pos.KIND == "peg"
        ):
            raise ConfigError(
                "wiring='dual_stream' needs norm_placement='pre', an MLP (it writes the context "
                "stream), no depth_weighted averaging and no pos='peg'"
            )
        self._validate_ties()
        self._validate_heads()

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

    def _validate_heads(self) -> None:
        """qk_form, value_output and head_mixing."""
        multi_head = self.n_kv_heads in (None, self.n_heads)
        sliced = self.n_heads * self.d_head == self.d_model
        if (not self.value_output or self.head_mixing is not HeadMixing.DENSE) and not sliced:
            raise ConfigError(
                f"value_output=False and head_mixing='{self.head_mixing.value}' give each head "
                f"a d_head slice of the stream: they need n_heads * d_head == d_model, got "
                f"{self.n_heads} * {self.d_head} != {self.d_model}"
            )
        if not self.value_output and (self.head_mixing is not HeadMixing.DENSE or not multi_head):
            raise ConfigError(
                "value_output=False has no output projection to mix and no value heads to "
                "share: keep head_mixing='dense' and n_kv_heads=None"
            )
        if self.qk_form is QKForm.SHARED and not multi_head:
            raise ConfigError("qk_form='shared' uses the keys as queries: it needs n_kv_heads=None")
        collapsed = self.qk_form in (QKForm.COLLAPSED, QKForm.SYMMETRIC)
        if collapsed and (
            not self.attention.softmax_scores
            or not multi_head
            or self.kv_shift
            or self.momentum is not None
            or self.pos.rotates
            or self.pos.KIND == "shaw"
        ):
            raise ConfigError(
                f"qk_form='{self.qk_form.value}' scores x_i W_QK x_j^T in model space: it needs "
                "a softmax attention kind, n_kv_heads=None, no kv_shift or momentum, and no "
                "rotary, xpos or shaw positions"
            )

    def layer(self, layer: int) -> ModelConfig:
        """The config layer `layer` is built from (this one without per-layer overrides)."""
        per_layer: tuple[ModelConfig, ...] = self.__dict__["_per_layer"]
        return per_layer[layer] if per_layer else self

    @property
    def layer_configs(self) -> tuple[ModelConfig, ...]:
        return tuple(self.layer(layer) for layer in range(self.n_layers))

    @property
    def n_patches(self) -> int:
        return self.input.n_patches if isinstance(self.input, Patches) else 0

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
    def has_mlp(self) -> bool:
        return self.mlp.present

    @property
    def has_norm(self) -> bool:
        return self.norm is not Norm.NONE

    @property
    def has_final_norm(self) -> bool:
        # Post-norm blocks already end normalised; pre-norm stacks need a final norm.
        return self.has_norm and self.norm_placement is NormPlacement.PRE

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with `changes`; `"pos.base": 500` changes one parameter of an option."""
        for key in [k for k in changes if "." in k]:
            field, _, param = key.partition(".")
            option = changes.get(field, getattr(self, field, None))
            if not isinstance(option, Option):
                raise ConfigError(f"{key!r}: {field!r} is not a config option with parameters")
            changes[field] = option.create(field, {**option.params, param: changes.pop(key)})
        return dataclasses.replace(self, **changes)  # unknown names: __new__

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Option):
                value = value.to_json()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif f.name == "layers":
                value = [override.to_json() for override in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        try:
            return cls(**legacy.upgrade(data))
        except TypeError as exc:
            raise ConfigError(f"config is incomplete: {exc}") from None


FIELD_CHECKS = field_checks(ModelConfig)


def _check_names(fields: dict[str, Any]) -> None:
    """Raise `ConfigError` naming the closest fields for any name that is not a field."""
    unknown = sorted(set(fields) - FIELD_CHECKS.keys())
    if unknown:
        hints = "; ".join(
            legacy.hint(u) or f"{u!r}: did you mean {close_matches(u, FIELD_CHECKS)}?"
            for u in unknown
        )
        raise ConfigError(f"unknown config field(s): {hints}")
