"""The padded softmax equals torch's on every row length, with the same gradients."""

from __future__ import annotations

import pytest
import torch

from workbench.components.softmax import log_softmax, softmax


@pytest.mark.parametrize("n", [1, 5, 15, 16, 17, 40])
def test_padded_softmax_equals_torch(n: int, gen) -> None:
    x = torch.randn(3, 4, n, generator=gen)
    x[0, 0, : n // 2] = float("-inf")  # masked keys stay masked
    for ours, theirs in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        mine = x.clone().requires_grad_()
        ref = x.clone().requires_grad_()
        out, expected = ours(mine), theirs(ref, -1)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
        weights = torch.randn(out.shape, generator=gen)
        finite = expected.isfinite()
        (out[finite] * weights[finite]).sum().backward()
        (expected[finite] * weights[finite]).sum().backward()
        torch.testing.assert_close(mine.grad, ref.grad, atol=1e-5, rtol=1e-5)
