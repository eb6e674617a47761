"""Positional encodings: where position enters the model, and with which parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from workbench.errors import ConfigError
from workbench.fields import NonNegativeInt, PositiveFloat, PositiveInt
from workbench.options.base import Option
from workbench.options.choices import Mask

if TYPE_CHECKING:
    from workbench.components.positions.base import Positions
    from workbench.components.positions.embedded import EmbeddedPositions
    from workbench.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class PosEncoding(Option):
    """How tokens learn their positions. Exactly one of: added to the embeddings (`embeds`),
    applied to queries and keys (`rotates`), added to the attention scores (`biases_scores`),
    a convolution over the patch grid (Peg), or nothing (NoPos)."""

    FAMILY: ClassVar[str] = "pos"
    embeds: ClassVar[bool] = False  # a table added to the embeddings before block 0
    rotates: ClassVar[bool] = False  # queries and keys rotated by position
    biases_scores: ClassVar[bool] = False  # a bias (or a key term) on the softmax scores
    cached: ClassVar[bool] = False  # the key/value cache knows how to extend it
    takes_position_ids: ClassVar[bool] = False  # explicit position ids (padding) apply to it

    @property
    def in_attention(self) -> bool:
        """Whether attention itself applies it (so that it can change from layer to layer)."""
        return self.rotates or self.biases_scores

    def component(self, cfg: ModelConfig) -> Positions:
        """What attention applies of this scheme (by default: nothing)."""
        from workbench.components.positions.base import Positions

        return Positions()

    def embedding(self, cfg: ModelConfig) -> EmbeddedPositions:
        """What the model adds to the embeddings of this scheme (by default: nothing)."""
        from workbench.components.positions.embedded import EmbeddedPositions

        return EmbeddedPositions()


@dataclass(frozen=True, kw_only=True)
class Learned(PosEncoding):
    """A learned absolute embedding per position (GPT-2, BERT)."""

    KIND: ClassVar[str] = "learned"
    embeds: ClassVar[bool] = True
    cached: ClassVar[bool] = True
    takes_position_ids: ClassVar[bool] = True

    def embedding(self, cfg: ModelConfig) -> EmbeddedPositions:
        from workbench.components.positions.embedded import TablePositions

        return TablePositions(cfg.n_ctx, cfg.d_model)


@dataclass(frozen=True, kw_only=True)
class Sinusoidal(PosEncoding):
    """The fixed sin/cos table (Vaswani et al. 2017)."""

    KIND: ClassVar[str] = "sinusoidal"
    embeds: ClassVar[bool] = True
    cached: ClassVar[bool] = True
    takes_position_ids: ClassVar[bool] = True

    def embedding(self, cfg: ModelConfig) -> EmbeddedPositions:
        from workbench.components.positions.embedded import sinusoidal_positions

        return sinusoidal_positions(cfg.n_ctx, cfg.d_model)


@dataclass(frozen=True, kw_only=True)
class Rotary(PosEncoding):
    """Rotary position embedding (Su et al., RoFormer): the first `dim` channels of each
    query and key head (all of them when None) rotate by position, frequencies from `base`."""

    KIND: ClassVar[str] = "rotary"
    rotates: ClassVar[bool] = True
    cached: ClassVar[bool] = True
    takes_position_ids: ClassVar[bool] = True
    dim: PositiveInt | None = None
    base: PositiveFloat = 10000.0

    def dims(self, d_head: int) -> int:
        return d_head if self.dim is None else self.dim

    def check(self, cfg: ModelConfig) -> None:
        rd = self.dims(cfg.d_head)
        if rd % 2 or not 0 < rd <= cfg.d_head:
            raise ConfigError(f"pos.dim={self.dim} must be even and in 1..d_head={cfg.d_head}")

    def tiny(self) -> Rotary:
        return self if self.dim is None else self.replace(dim=4)

    def component(self, cfg: ModelConfig) -> Positions:
        from workbench.components.positions.rotary import RotaryPositions

        return RotaryPositions(self, cfg.n_ctx, cfg.d_head)


@dataclass(frozen=True, kw_only=True)
class XPos(Rotary):
    """Rotary with an exponential decay per frequency, zeta^((n - m) / scale_base) (Sun et
    al. 2022, "A Length-Extrapolatable Transformer"). Causal only."""

    KIND: ClassVar[str] = "xpos"
    cached: ClassVar[bool] = False
    takes_position_ids: ClassVar[bool] = False
    scale_base: PositiveFloat = 512.0

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        _needs_causal(cfg, "decays with distance to earlier keys")


@dataclass(frozen=True, kw_only=True)
class ALiBi(PosEncoding):
    """Attention with linear biases: a fixed slope per head times the distance (Press et al.
    2022)."""

    KIND: ClassVar[str] = "alibi"
    biases_scores: ClassVar[bool] = True
    cached: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> Positions:
        from workbench.components.positions.biases import AlibiPositions

        return AlibiPositions()


@dataclass(frozen=True, kw_only=True)
class T5Buckets(PosEncoding):
    """A learned bias per head and log-bucketed relative position (Raffel et al. 2020):
    `buckets` buckets, distances beyond `max_distance` share the last one."""

    KIND: ClassVar[str] = "t5_bias"
    biases_scores: ClassVar[bool] = True
    buckets: PositiveInt = 32
    max_distance: PositiveInt = 128

    def validate(self) -> None:
        if not 4 <= self.buckets <= self.max_distance:
            raise ConfigError(
                f"pos.buckets={self.buckets} must be >= 4 and <= pos.max_distance="
                f"{self.max_distance}"
            )

    def component(self, cfg: ModelConfig) -> Positions:
        from workbench.components.positions.biases import T5Positions

        return T5Positions(self)


@dataclass(frozen=True, kw_only=True)
class Shaw(PosEncoding):
    """Learned relative embeddings on keys and values, distances clipped to +-max_distance
    (Shaw et al. 2018)."""

    KIND: ClassVar[str] = "shaw"
    biases_scores: ClassVar[bool] = True
    max_distance: NonNegativeInt = 16

    def component(self, cfg: ModelConfig) -> Positions:
        from workbench.components.positions.shaw import ShawPositions

        return ShawPositions(self)


@dataclass(frozen=True, kw_only=True)
class Fire(PosEncoding):
    """A bias that is an MLP of the log-normalised distance (Li et al. 2024, "Functional
    Interpolation for Relative Positions"). Causal only."""

    KIND: ClassVar[str] = "fire"
    biases_scores: ClassVar[bool] = True

    def check(self, cfg: ModelConfig) -> None:
        _needs_causal(cfg, "normalises by the query position")

    def component(self, cfg: ModelConfig) -> Positions:
        from workbench.components.positions.biases import FirePositions

        return FirePositions(cfg.n_ctx)


@dataclass(frozen=True, kw_only=True)
class Peg(PosEncoding):
    """Vision: a depthwise 3x3 convolution over the patch grid after block 0 (Chu et al. 2023,
    "Conditional Positional Encodings for Vision Transformers")."""

    KIND: ClassVar[str] = "peg"

    def check(self, cfg: ModelConfig) -> None:
        from workbench.options.inputs import Patches

        if not isinstance(cfg.input, Patches) or cfg.depth_weighted:
            raise ConfigError(
                "pos='peg' convolves the patch grid: it needs input='patches' and no "
                "depth_weighted averaging"
            )


@dataclass(frozen=True, kw_only=True)
class Abacus(PosEncoding):
    """Each digit embeds its place within its number (McLeish et al. 2024, "Transformers Can
    Do Arithmetic with the Right Embeddings"). `digits` are the token ids that are digits; in
    training each sequence's places shift by a random 0..`max_offset`."""

    KIND: ClassVar[str] = "abacus"
    embeds: ClassVar[bool] = True
    digits: tuple[NonNegativeInt, ...]
    max_offset: NonNegativeInt = 0

    def validate(self) -> None:
        if not self.digits:
            raise ConfigError("pos='abacus' needs digits (the token ids that are digits)")

    def check(self, cfg: ModelConfig) -> None:
        from workbench.options.inputs import Tokens

        if not isinstance(cfg.input, Tokens):
            raise ConfigError("pos='abacus' needs token input (digits are token ids)")
        if not all(t < cfg.d_vocab for t in self.digits):
            raise ConfigError(f"pos.digits must be ids in 0..{cfg.d_vocab - 1}")

    def embedding(self, cfg: ModelConfig) -> EmbeddedPositions:
        from workbench.components.positions.embedded import AbacusPositions

        return AbacusPositions(self.digits, self.max_offset, cfg.n_ctx, cfg.d_model)

    def tiny(self) -> Abacus:  # short test runs must still see every place
        return self.replace(max_offset=min(self.max_offset, 3))


@dataclass(frozen=True, kw_only=True)
class NoPos(PosEncoding):
    """No positional information (NoPE)."""

    KIND: ClassVar[str] = "none"
    cached: ClassVar[bool] = True


def _needs_causal(cfg: ModelConfig, why: str) -> None:
    if cfg.mask is not Mask.CAUSAL:
        raise ConfigError(f"pos='{cfg.pos.KIND}' {why}: set mask='causal'")
