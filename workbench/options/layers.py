"""Per-layer blocks: a model's layers share one block spec, and overrides change the attention
kind, the window, the positions or the MLP at some layers, so hybrids are data (MASFormer's
few full-attention layers among sliding-window ones, DeltaNet with softmax layers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import ConfigError, close_matches
from workbench.fields import Parsed
from workbench.options.base import Option

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
