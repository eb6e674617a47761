"""Named architecture presets: published language-model families (`models`), vision and series
models (`perception`) and component variants (`variants`), each with its paper and a tiny twin
for tests."""

from __future__ import annotations

from workbench.presets import models, perception, variants
from workbench.presets.registry import Preset, get_preset, list_presets, register

register(models.MODELS)
register(perception.PERCEPTION)
register(variants.VARIANTS)

__all__ = ["Preset", "get_preset", "list_presets", "register"]
