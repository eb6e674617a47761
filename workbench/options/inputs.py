"""Input kinds: what a model reads and how it becomes the first residual stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from workbench.errors import ConfigError
from workbench.fields import PositiveInt
from workbench.options.base import Option

if TYPE_CHECKING:
    from workbench.components.embed import InputEmbedding
    from workbench.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class InputKind(Option):
    FAMILY: ClassVar[str] = "input"
    tokens: ClassVar[bool] = False  # integer ids through an embedding matrix

    def check(self, cfg: ModelConfig) -> None:
        if cfg.tied_embeddings and not self.tokens:
            raise ConfigError(
                f"input='{self.KIND}' has no token embedding to tie: set tied_embeddings=False"
            )

    def component(self, cfg: ModelConfig) -> InputEmbedding:
        """How the model embeds this input (workbench/components/embed.py)."""
        raise NotImplementedError(f"input kind {self.KIND!r} has no component")


@dataclass(frozen=True, kw_only=True)
class Tokens(InputKind):
    """Integer ids [batch, pos] through an embedding matrix."""

    KIND: ClassVar[str] = "tokens"
    tokens: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> InputEmbedding:
        from workbench.components.embed import TokenEmbedding

        return TokenEmbedding(cfg.d_vocab, cfg.d_model)


@dataclass(frozen=True, kw_only=True)
class Patches(InputKind):
    """Images [batch, channels, image_size, image_size] cut into patch_size x patch_size
    patches after a class token (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words")."""

    KIND: ClassVar[str] = "patches"
    image_size: PositiveInt
    patch_size: PositiveInt
    channels: PositiveInt = 1

    @property
    def side(self) -> int:
        """Patches per row (and per column) of the grid."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.side**2

    def validate(self) -> None:
        size, patch = self.image_size, self.patch_size
        if size < patch or size % patch:
            raise ConfigError(
                f"input='patches' needs patch_size dividing image_size, got image_size={size}, "
                f"patch_size={patch}"
            )

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        size, patch = self.image_size, self.patch_size
        if cfg.n_ctx != self.n_patches + 1:
            raise ConfigError(
                f"a {size}x{size} image in {patch}x{patch} patches gives {self.n_patches} "
                f"patches plus the class token: set n_ctx={self.n_patches + 1}, not {cfg.n_ctx}"
            )

    def component(self, cfg: ModelConfig) -> InputEmbedding:
        from workbench.components.embed import ModuleEmbedding, PatchEmbed

        return ModuleEmbedding(PatchEmbed, cfg)

    def tiny(self) -> Patches:  # 16x16 in 4x4 patches: 16 patches plus the class token
        return self.replace(image_size=16, patch_size=4)


@dataclass(frozen=True, kw_only=True)
class Series(InputKind):
    """Multivariate series [batch, lookback, variate], one token per variate embedding its
    whole lookback window (Liu et al. 2024, "iTransformer")."""

    KIND: ClassVar[str] = "series"
    lookback: PositiveInt

    def component(self, cfg: ModelConfig) -> InputEmbedding:
        from workbench.components.embed import ModuleEmbedding, SeriesEmbed

        return ModuleEmbedding(SeriesEmbed, cfg)

    def tiny(self) -> Series:
        return self.replace(lookback=32)
