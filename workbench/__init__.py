"""The workbench: hooked transformers for mechanistic interpretability.

Public API: `build(preset, **overrides)`, `load(path)`, `list_presets()`, `open_checkpoint`,
`list_builtin_models()`, plus the config types. The model classes import TransformerLens
(seconds), so they load on first use and `workbench variants` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.config import (
    AttentionKind,
    KVSharing,
    Mask,
    MLPKind,
    ModelConfig,
    Norm,
    NormPlacement,
    PosEncoding,
    Wiring,
)
from workbench.presets import list_presets

if TYPE_CHECKING:
    from workbench.api import build, list_builtin_models, load, open_checkpoint
    from workbench.model import Transformer

__version__ = "0.1.0"

_LAZY = {
    "build": "workbench.api",
    "load": "workbench.api",
    "open_checkpoint": "workbench.api",
    "list_builtin_models": "workbench.api",
    "Transformer": "workbench.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


__all__ = [
    "AttentionKind",
    "KVSharing",
    "MLPKind",
    "Mask",
    "ModelConfig",
    "Norm",
    "NormPlacement",
    "PosEncoding",
    "Transformer",
    "Wiring",
    "build",
    "list_builtin_models",
    "list_presets",
    "load",
    "open_checkpoint",
]
