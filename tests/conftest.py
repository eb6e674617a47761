"""Shared fixtures. Tests run offline on CPU with a fixed thread count."""

from __future__ import annotations

import pytest
import torch

from workbench.options import Abacus, Patches, Series

torch.set_num_threads(2)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def tiny_presets() -> list[str]:
    from workbench.presets import list_presets

    return [p.name for p in list_presets() if p.tiny_of is not None]


def example_input(model, batch: int, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Valid model input: token ids [batch, min(n, n_ctx)], or images for a vision model."""

    cfg = model.config
    if isinstance(cfg.input, Patches):
        shape = (batch, cfg.input.channels, cfg.input.image_size, cfg.input.image_size)
        return torch.randn(*shape, generator=gen)
    if isinstance(cfg.input, Series):
        return torch.randn(batch, cfg.input.lookback, min(n, cfg.n_ctx), generator=gen)
    return torch.randint(0, cfg.d_vocab, (batch, min(n, cfg.n_ctx)), generator=gen)


def input_length(model, inputs: torch.Tensor) -> int:
    """Sequence length the model sees: tokens, patches plus class token, or variates."""
    if inputs.ndim == 4:
        return model.config.n_ctx
    return inputs.shape[2] if inputs.ndim == 3 else inputs.shape[1]


def task_for(preset: str) -> str:
    """A built-in task every model of this preset can train on."""
    from workbench.presets import get_preset

    config = get_preset(preset).config
    if isinstance(config.input, Patches):
        return "bars"
    if isinstance(config.input, Series):
        return "forecast"
    return "addition" if isinstance(config.pos, Abacus) else "copy"
