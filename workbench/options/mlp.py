"""MLP kinds: the activation between the MLP's two linear maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from workbench.errors import ConfigError
from workbench.fields import PositiveInt
from workbench.options.base import Option

if TYPE_CHECKING:
    from workbench.components.activations.base import Activation
    from workbench.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class MLPKind(Option):
    """The MLP of each block, or none (attention-only)."""

    FAMILY: ClassVar[str] = "mlp"
    present: ClassVar[bool] = True
    gated: ClassVar[bool] = False  # act(x W_gate) * (x W_in): a second input matrix

    def check(self, cfg: ModelConfig) -> None:
        if self.present and cfg.d_mlp < 1:
            raise ConfigError(f"mlp={self.KIND} needs d_mlp >= 1; set d_mlp or mlp='none'")

    def component(self, cfg: ModelConfig) -> Activation:
        """What the MLP computes between its linear maps (workbench/components/activations)."""
        raise NotImplementedError(f"mlp kind {self.KIND!r} has no component")


@dataclass(frozen=True, kw_only=True)
class Gelu(MLPKind):
    """GELU, the exact erf form (BERT, ViT, GPT-NeoX; Hendrycks & Gimpel 2016)."""

    KIND: ClassVar[str] = "gelu"

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.pointwise import Pointwise

        return Pointwise("gelu")


@dataclass(frozen=True, kw_only=True)
class GeluTanh(MLPKind):
    """GELU's tanh approximation (GPT-2's "gelu_new", GPT-J)."""

    KIND: ClassVar[str] = "gelu_tanh"

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.pointwise import Pointwise

        return Pointwise("gelu_tanh")


@dataclass(frozen=True, kw_only=True)
class Relu(MLPKind):
    KIND: ClassVar[str] = "relu"

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.pointwise import Pointwise

        return Pointwise("relu")


@dataclass(frozen=True, kw_only=True)
class SwiGLU(MLPKind):
    """silu(x W_gate) * (x W_in) (Shazeer 2020, "GLU Variants Improve Transformer")."""

    KIND: ClassVar[str] = "swiglu"
    gated: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.glu import Glu

        return Glu("silu", cfg.d_model, cfg.d_mlp)


@dataclass(frozen=True, kw_only=True)
class GeGLU(MLPKind):
    """gelu(x W_gate) * (x W_in) (Shazeer 2020)."""

    KIND: ClassVar[str] = "geglu"
    gated: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.glu import Glu

        return Glu("gelu", cfg.d_model, cfg.d_mlp)


@dataclass(frozen=True, kw_only=True)
class ReGLU(MLPKind):
    """relu(x W_gate) * (x W_in) (Shazeer 2020)."""

    KIND: ClassVar[str] = "reglu"
    gated: ClassVar[bool] = True

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.glu import Glu

        return Glu("relu", cfg.d_model, cfg.d_mlp)


@dataclass(frozen=True, kw_only=True)
class TopK(MLPKind):
    """ReLU keeping the `k` largest activations per token (Li et al. 2023, "The Lazy Neuron
    Phenomenon")."""

    KIND: ClassVar[str] = "topk"
    k: PositiveInt

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        if not self.k <= cfg.d_mlp:
            raise ConfigError(f"mlp.k={self.k} must be in 1..d_mlp={cfg.d_mlp}")

    def tiny(self) -> TopK:
        return self.replace(k=min(self.k, 8))

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.pointwise import TopKRelu

        return TopKRelu(self.k)


@dataclass(frozen=True, kw_only=True)
class Kan(MLPKind):
    """Group-rational KAN layers instead of fixed activations, one rational function per
    `groups` of channels (Yang & Wang 2025, "Kolmogorov-Arnold Transformer")."""

    KIND: ClassVar[str] = "kan"
    groups: PositiveInt = 8

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        if cfg.d_model % self.groups or cfg.d_mlp % self.groups:
            raise ConfigError(
                f"mlp.groups={self.groups} must divide d_model={cfg.d_model} and d_mlp={cfg.d_mlp}"
            )

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.kan import KanActivation

        return KanActivation(self.groups, cfg.d_model, cfg.d_mlp)


@dataclass(frozen=True, kw_only=True)
class Lookup(MLPKind):
    """Lookup tables instead of an activation (Transformer Programs, Friedman, Wettig & Chen
    2023): table t has `sizes[t]` entries, each an output value in 0..values-1. W_in's first
    column of group t (columns t*values .. (t+1)*values) computes the table's entry index
    from the residual stream (`hook_pre`); `hook_post` is the one-hot of the entry's value
    in the group's `values` units, which W_out writes to the stream. The entries are the
    parameter `W_table` (all tables, one after the other)."""

    KIND: ClassVar[str] = "lookup"
    sizes: tuple[PositiveInt, ...]
    values: PositiveInt
    paper: ClassVar[str] = "Friedman, Wettig & Chen 2023"

    def check(self, cfg: ModelConfig) -> None:
        super().check(cfg)
        if cfg.d_mlp != len(self.sizes) * self.values:
            raise ConfigError(
                f"mlp='lookup' with {len(self.sizes)} tables of {self.values} values needs "
                f"d_mlp={len(self.sizes) * self.values}, got {cfg.d_mlp}"
            )

    def tiny(self) -> Lookup:
        return self

    def component(self, cfg: ModelConfig) -> Activation:
        from workbench.components.activations.lookup import LookupTables

        return LookupTables(self.sizes, self.values)


@dataclass(frozen=True, kw_only=True)
class NoMLP(MLPKind):
    """No MLP: an attention-only model."""

    KIND: ClassVar[str] = "none"
    present: ClassVar[bool] = False
