"""Shared fixtures. Tests run offline on CPU with a fixed thread count."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def tiny_presets() -> list[str]:
    from workbench.presets import list_presets

    return [p.name for p in list_presets() if p.tiny_of is not None]
