"""Per-layer blocks: a model's layers share one block spec, and overrides change the attention
kind, the window, the positions or the MLP at some layers, so hybrids are data (MASFormer's
few full-attention layers among sliding-window ones, DeltaNet with softmax layers)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError, close_matches
from workbench.fields import Parsed
from workbench.options.base import Option

if TYPE_CHECKING:
    from workbench.config import ModelConfig
    from workbench.options.positions import PosEncoding

OVERRIDABLE = ("attention", "pos", "window", "mlp")


@dataclass(frozen=True)
class LayerOverride(Parsed):
    """`changes` to the shared block spec at the layers `at`. Written as a dict:
    `{"at": [0, 6], "attention": "softmax", "window": None}` (None: no window)."""

    at: tuple[int, ...]
    changes: tuple[tuple[str, Any], ...]

    @classmethod
    def parse(cls, name: str, value: Any) -> LayerOverride:
        if isinstance(value, LayerOverride):
            return value
        if not isinstance(value, dict) or "at" not in value:
            raise ConfigError(
                f"{name} must be a dict with 'at' (the layers) and the fields to change "
                f"({', '.join(OVERRIDABLE)}), got {value!r}"
            )
        at = value["at"]
        at = (at,) if isinstance(at, int) and not isinstance(at, bool) else at
        if not isinstance(at, list | tuple) or not at:
            raise ConfigError(f"{name}.at must list one or more layer indices, got {at!r}")
        for layer in at:
            if type(layer) is not int or layer < 0:
                raise ConfigError(f"{name}.at holds layer indices (integers >= 0), got {layer!r}")
        changes = {k: v for k, v in value.items() if k != "at"}
        for key in changes:
            if key not in OVERRIDABLE:
                raise ConfigError(
                    f"{name}: {key!r} cannot change per layer (did you mean "
                    f"{close_matches(key, OVERRIDABLE)}?); per-layer fields: "
                    f"{', '.join(OVERRIDABLE)}"
                )
        if not changes:
            raise ConfigError(f"{name} changes nothing: add one of {', '.join(OVERRIDABLE)}")
        from workbench.config import FIELD_CHECKS

        checked = tuple(sorted((k, FIELD_CHECKS[k](f"{name}.{k}", v)) for k, v in changes.items()))
        return cls(tuple(at), checked)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": list(self.at)}
        for key, value in self.changes:
            out[key] = value.to_json() if isinstance(value, Option) else value
        return out


def resolve_layers(cfg: ModelConfig) -> tuple[ModelConfig, ...]:
    """The config of each layer: `cfg`, with the overrides that name the layer (empty: every
    layer is `cfg`)."""
    if not cfg.layers:
        return ()
    changes: list[dict[str, Any]] = [{} for _ in range(cfg.n_layers)]
    for i, override in enumerate(cfg.layers):
        for layer in override.at:
            if layer >= cfg.n_layers:
                raise ConfigError(
                    f"layers[{i}].at names layer {layer}; this model has layers "
                    f"0..{cfg.n_layers - 1}"
                )
            if changes[layer]:
                raise ConfigError(f"layer {layer} is overridden twice in layers")
            changes[layer] = dict(override.changes)
    resolved = []
    for layer, change in enumerate(changes):
        pos = change.get("pos", cfg.pos)
        if pos != cfg.pos and not (_per_layer_pos(pos) and _per_layer_pos(cfg.pos)):
            raise ConfigError(
                f"layer {layer} changes pos from {cfg.pos} to {pos}: only positions that "
                "attention applies (rotary, xpos, alibi, t5_bias, shaw, fire) or none can "
                "change per layer"
            )
        resolved.append(dataclasses.replace(cfg, layers=(), **change) if change else None)
    base = cfg.replace(layers=())
    return tuple(base if c is None else c for c in resolved)


def _per_layer_pos(pos: PosEncoding) -> bool:
    return pos.in_attention or pos.KIND == "none"
