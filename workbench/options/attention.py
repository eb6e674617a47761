"""Attention kinds: how queries and keys become the token-mixing pattern."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from workbench.errors import ConfigError
from workbench.fields import FiniteFloat, NonNegativeInt, PositiveInt
from workbench.options.base import Option
from workbench.options.choices import Mask, QKForm

if TYPE_CHECKING:
    from workbench.components.mixers.base import Mixer
    from workbench.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class AttentionKind(Option):
    """How a head mixes tokens. The softmax kinds normalise biased scores into a pattern; the
    others' pattern hook holds their effective token-mixing matrix."""

    FAMILY: ClassVar[str] = "attention"
    softmax_scores: ClassVar[bool] = True  # scores are logits that position biases add to
    has_qk: ClassVar[bool] = True  # queries and keys (pooling has neither)
    recurrent: ClassVar[bool] = False  # a causal recurrence: no window, no bidirectional mask
    cached: ClassVar[bool] = False  # the key/value cache reproduces it
    masks_padding: ClassVar[bool] = True  # padding keys can be hidden from it
    gate: ClassVar[str] = ""  # the data-dependent gate it computes, if any (for readers)
    paper: ClassVar[str] = ""

    def check(self, cfg: ModelConfig) -> None:
        if self.recurrent and (cfg.mask is not Mask.CAUSAL or cfg.window is not None):
            raise ConfigError(
                f"attention='{self.KIND}' is a causal recurrence: set mask='causal' and no window"
            )
        if self.has_qk and not self.softmax_scores and cfg.pos.biases_scores:
            raise ConfigError(
                f"pos={cfg.pos.KIND} adds a bias to softmax scores, which {self.KIND} attention "
                "does not have; use pos='rotary', 'learned', 'sinusoidal' or 'none'"
            )

    def component(self, cfg: ModelConfig) -> Mixer:
        """The component that mixes tokens this way (workbench/components/mixers)."""
        raise NotImplementedError(f"attention kind {self.KIND!r} has no component")


@dataclass(frozen=True, kw_only=True)
class Softmax(AttentionKind):
    """Scaled dot-product softmax attention (Vaswani et al. 2017)."""

    KIND: ClassVar[str] = "softmax"
    cached: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.softmax import SoftmaxMixer

        return SoftmaxMixer()


@dataclass(frozen=True, kw_only=True)
class ClippedSoftmax(AttentionKind):
    """clip((zeta - gamma) softmax + gamma, 0, 1): exact zeros become reachable (Bondarenko
    et al. 2023, "Quantizable Transformers")."""

    KIND: ClassVar[str] = "clipped_softmax"
    cached: ClassVar[bool] = True
    gamma: FiniteFloat = -0.03
    zeta: FiniteFloat = 1.0

    def validate(self) -> None:
        if not self.gamma <= 0 <= 1 <= self.zeta:
            raise ConfigError(
                f"clipped softmax needs attention.gamma <= 0 and attention.zeta >= 1, got "
                f"{self.gamma} and {self.zeta}"
            )

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.softmax import ClippedSoftmaxMixer

        return ClippedSoftmaxMixer(self)


@dataclass(frozen=True, kw_only=True)
class Forgetting(AttentionKind):
    """Softmax with a data-dependent forget gate (Lin et al. 2025, "Forgetting Transformer")."""

    KIND: ClassVar[str] = "forgetting"
    gate: ClassVar[str] = "forget gate"

    def check(self, cfg: ModelConfig) -> None:
        if cfg.mask is not Mask.CAUSAL:
            raise ConfigError("attention='forgetting' is causal by construction; set mask='causal'")

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.softmax import ForgettingMixer

        return ForgettingMixer()


@dataclass(frozen=True, kw_only=True)
class Sinkhorn(AttentionKind):
    """Doubly stochastic attention (Sander et al. 2022, "Sinkformers"): Sinkhorn's algorithm
    alternately normalises the rows and the columns of exp(scores), rows first,
    `iterations` normalisations in all (the authors' `max_iter`, 3 in their attention
    layer), so rows and columns tend to 1; an odd count ends with rows summing to 1. One
    iteration is softmax.
    Bidirectional only: a causal doubly stochastic matrix is the identity."""

    KIND: ClassVar[str] = "sinkhorn"
    iterations: PositiveInt = 3

    def check(self, cfg: ModelConfig) -> None:
        if cfg.mask is not Mask.BIDIRECTIONAL:
            raise ConfigError(
                "attention='sinkhorn' normalises columns too, which a causal mask leaves to "
                "the identity: set mask='bidirectional'"
            )

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.sinkhorn import SinkhornMixer

        return SinkhornMixer(self)


@dataclass(frozen=True, kw_only=True)
class Linear(AttentionKind):
    """Kernel feature map elu + 1, normalised by row (Katharopoulos et al. 2020)."""

    KIND: ClassVar[str] = "linear"
    softmax_scores: ClassVar[bool] = False

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.linear import LinearMixer

        return LinearMixer()


@dataclass(frozen=True, kw_only=True)
class GatedLinear(AttentionKind):
    """GLA: per-key-dimension decay gates (Yang et al. 2024, "Gated Linear Attention")."""

    KIND: ClassVar[str] = "gated_linear"
    gate: ClassVar[str] = "decay gates"
    softmax_scores: ClassVar[bool] = False
    recurrent: ClassVar[bool] = True
    masks_padding: ClassVar[bool] = False

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.gated_linear import GatedLinearMixer

        return GatedLinearMixer()


@dataclass(frozen=True, kw_only=True)
class Delta(AttentionKind):
    """DeltaNet: delta-rule state updates (Schlag et al. 2021; Yang et al. 2024)."""

    KIND: ClassVar[str] = "delta"
    gate: ClassVar[str] = "delta-rule beta"
    softmax_scores: ClassVar[bool] = False
    recurrent: ClassVar[bool] = True
    masks_padding: ClassVar[bool] = False

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.delta import DeltaMixer

        return DeltaMixer()


@dataclass(frozen=True, kw_only=True)
class Pooling(AttentionKind):
    """PoolFormer's mixer: the average of a neighbourhood of `size` minus the token itself
    (Yu et al. 2022, "MetaFormer Is Actually What You Need for Vision"); a size x size
    square on a patch grid."""

    KIND: ClassVar[str] = "pooling"
    softmax_scores: ClassVar[bool] = False
    has_qk: ClassVar[bool] = False
    masks_padding: ClassVar[bool] = False
    size: PositiveInt = 3

    def check(self, cfg: ModelConfig) -> None:
        if (
            cfg.pos.in_attention
            or cfg.qk_form is not QKForm.SEPARATE
            or cfg.kv_shift
            or cfg.momentum is not None
            or cfg.window is not None
            or cfg.n_kv_heads not in (None, cfg.n_heads)
        ):
            raise ConfigError(
                "attention='pooling' has no queries or keys: use an additive pos (or none), "
                "qk_form='separate', n_kv_heads=None, no kv_shift, momentum or window "
                "(attention.size sets the neighbourhood)"
            )
        if cfg.mask is Mask.BIDIRECTIONAL and self.size % 2 == 0:
            raise ConfigError(
                f"attention.size={self.size} must be odd for a centred (bidirectional) "
                "neighbourhood"
            )

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.pooling import PoolingMixer
        from workbench.options.inputs import Patches

        return PoolingMixer(self, cfg.input.side if isinstance(cfg.input, Patches) else None)


@dataclass(frozen=True, kw_only=True)
class ClosestMatch(AttentionKind):
    """Transformer Program attention (Friedman, Wettig & Chen 2023, "Learning Transformer
    Programs"): a key matches a query where q.k > 1/2 (queries and keys are one-hot values,
    the query's mapped through the head's predicate). Each head but the last
    `counting_heads` attends, hard, to the closest matching key (nearest; left before right
    at equal distance; its own position only when no other key matches; position 0 when
    nothing matches); a counting head's pattern is 1 at every matching key, so its output is
    a sum (with a value of 1 everywhere, a count)."""

    KIND: ClassVar[str] = "closest_match"
    softmax_scores: ClassVar[bool] = False
    counting_heads: NonNegativeInt = 0
    paper: ClassVar[str] = "Friedman, Wettig & Chen 2023"

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        if self.counting_heads > cfg.n_heads:
            raise ConfigError(
                f"attention.counting_heads={self.counting_heads} must be at most "
                f"n_heads={cfg.n_heads}"
            )

    def component(self, cfg: ModelConfig) -> Mixer:
        from workbench.components.mixers.closest_match import ClosestMatchMixer

        return ClosestMatchMixer(self.counting_heads)
