"""What the ported API tests share: the lens and TransformerLens processed alike."""

from __future__ import annotations

import pytest
import torch

from tests.lens.conftest import transformerlens_model
from workbench.lens import HookedTransformer

TEXT = "Hello world!"
ATOL = 1e-5


def close(a, b, atol=ATOL):
    torch.testing.assert_close(
        a, b.detach() if isinstance(b, torch.Tensor) else b, atol=atol, rtol=1e-5
    )


@pytest.fixture(scope="module")
def processed(gpt2_dir):
    """`from_pretrained` (TransformerLens's default processing) and TransformerLens's model
    processed the same way."""
    return HookedTransformer.from_pretrained(gpt2_dir), transformerlens_model(
        gpt2_dir, processed=True
    )
