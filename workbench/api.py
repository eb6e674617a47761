"""The public entry points: build a model from a preset, load a saved or built-in one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.checkpoint import Checkpoint, load_checkpoint
from workbench.config import ModelConfig
from workbench.errors import CheckpointError, unknown
from workbench.model import Transformer
from workbench.presets import get_preset

BUILTIN_DIR = Path(__file__).parent / "builtin"


def build(preset: str | ModelConfig, *, seed: int = 0, **overrides: Any) -> Transformer:
    """A freshly initialised model of `preset` (a name or a config), with config overrides."""
    config = preset if isinstance(preset, ModelConfig) else get_preset(preset).config
    if overrides:
        config = config.replace(**overrides)
    model = Transformer(config)
    model.init_weights(seed)
    return model


def list_builtin_models() -> list[str]:
    """Names of the trained models shipped inside the package (usable with `load`)."""
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "workbench.json").is_file())


def resolve(path: str | Path) -> Path:
    """A checkpoint directory, or the directory of a built-in model of that name."""
    p = Path(path)
    if p.exists():
        return p
    if isinstance(path, str) and "/" not in path and (BUILTIN_DIR / path).is_dir():
        return BUILTIN_DIR / path
    if isinstance(path, str) and "/" not in path and not p.suffix:
        raise unknown("built-in model", path, list_builtin_models())
    raise CheckpointError(f"checkpoint directory {p} does not exist")


def load(path: str | Path, *, device: str = "cpu") -> Transformer:
    """Restore a model from a checkpoint directory or a built-in model name."""
    return load_checkpoint(resolve(path), device).model


def open_checkpoint(path: str | Path, *, device: str = "cpu") -> Checkpoint:
    """Like `load`, and also return the metadata (task, vocabulary, metrics, seed)."""
    return load_checkpoint(resolve(path), device)
