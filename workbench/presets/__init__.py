"""Named architecture presets: published model families (`models`) and component variants
(`variants`), each with its paper and a tiny twin for tests."""

from __future__ import annotations

from workbench.presets import models, variants
from workbench.presets.registry import Preset, get_preset, list_presets, register

register(models.MODELS)
register(variants.VARIANTS)

__all__ = ["Preset", "get_preset", "list_presets", "register"]
