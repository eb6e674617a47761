"""The preset registry: named architectures, each with the paper it comes from.

Every preset has a tiny twin (`<name>-tiny`) with the same choice points and small sizes, used
by the tests and for quick experiments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from workbench.config import ModelConfig
from workbench.errors import ConfigError, unknown
from workbench.options import Option, Patches
from workbench.options.layers import LayerOverride


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    paper: str
    config: ModelConfig
    tiny_of: str | None = None  # the full preset this is the tiny twin of

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "tiny_of": self.tiny_of,
            "config": self.config.to_dict(),
        }


_REGISTRY: dict[str, Preset] = {}


def config(**fields: object) -> ModelConfig:
    """A `ModelConfig` from keyword fields (the preset tables' shorthand)."""
    return ModelConfig(**fields)  # type: ignore[arg-type]


def sizes(
    n_layers: int, d_model: int, n_heads: int, d_head: int, d_mlp: int, d_vocab: int, n_ctx: int
) -> dict[str, int]:
    """The size fields of a preset, in one row: layers, width, heads, head width, MLP width,
    vocabulary, context."""
    return dict(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=d_mlp,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
    )


def _tiny(p: Preset) -> Preset:
    c = p.config
    # keep the attention kind: multi-head stays multi-head, MQA keeps 1 KV head, GQA gets 2
    kv = None if c.n_kv_heads in (None, c.n_heads) else (1 if c.kv_heads == 1 else 2)
    window = None if c.window is None else min(c.window, 4)
    tiny_input = c.input.tiny()
    # keep the tie pattern; hybrids keep four layers and the overrides among them
    n_layers = c.n_layers if c.weight_ties else min(c.n_layers, 4 if c.layers else 2)
    layers = tuple(o for o in map(partial(_tiny_override, n_layers=n_layers), c.layers) if o)
    tiny = c.replace(
        n_layers=n_layers,
        d_model=32,
        n_heads=4,
        n_kv_heads=kv,
        d_head=8,
        d_mlp=0 if c.d_mlp == 0 else 64,
        d_vocab=min(c.d_vocab, 50),
        n_ctx=tiny_input.n_patches + 1 if isinstance(tiny_input, Patches) else min(c.n_ctx, 32),
        input=tiny_input,
        pos=c.pos.tiny(),
        attention=c.attention.tiny(),
        mlp=c.mlp.tiny(),
        window=window,
        layers=layers,
    )
    return Preset(
        f"{p.name}-tiny", f"tiny twin of {p.name} for tests", p.paper, tiny, tiny_of=p.name
    )


def _tiny_override(override: LayerOverride, n_layers: int) -> LayerOverride | None:
    """The same override at the tiny twin's first `n_layers` layers, with its options and
    window; None if it names none of them."""
    at = tuple(layer for layer in override.at if layer < n_layers)
    if not at:
        return None
    changes = []
    for key, value in override.changes:
        if isinstance(value, Option):
            value = value.tiny()
        elif key == "window" and value is not None:
            value = min(value, 4)
        changes.append((key, value))
    return LayerOverride(at, tuple(changes))


def list_presets(*, include_tiny: bool = True) -> list[Preset]:
    """All presets, each full preset followed by its tiny twin."""
    return [p for p in _REGISTRY.values() if include_tiny or p.tiny_of is None]


def get_preset(name: str) -> Preset:
    if name not in _REGISTRY:
        raise unknown("preset", name, _REGISTRY)
    return _REGISTRY[name]


def register(presets: list[Preset]) -> None:
    """Add full presets and their tiny twins; names must be new."""
    for full in presets:
        for preset in (full, _tiny(full)):
            if preset.name in _REGISTRY:
                raise ConfigError(f"preset {preset.name!r} is registered twice")
            _REGISTRY[preset.name] = preset
