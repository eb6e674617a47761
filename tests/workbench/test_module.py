"""Plain attributes set fast behave as nn.Module's: registered names still go through it."""

from __future__ import annotations

import copy

import torch
from torch import nn

from workbench.components.module import PlainAttributes
from workbench.config import Mask


class Toy(PlainAttributes, nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.size, self.name_, self.mask, self.pair, self.off = 3, "x", Mask.CAUSAL, (1, 2), None
        self.w = nn.Parameter(torch.ones(2))
        self.register_buffer("b", torch.zeros(2))
        self.child = nn.Linear(2, 2)


def test_plain_attributes_and_registered_names() -> None:
    toy = Toy()
    assert (toy.size, toy.name_, toy.mask, toy.pair, toy.off) == (3, "x", Mask.CAUSAL, (1, 2), None)
    assert set(dict(toy.named_parameters())) == {"w", "child.weight", "child.bias"}
    toy.w = None  # a registered parameter set to None: nn.Module's rule (it stays registered)
    assert "w" in toy._parameters and toy._parameters["w"] is None
    toy.b = None
    assert "b" in toy._buffers and toy._buffers["b"] is None
    toy.size = 5
    assert toy.size == 5 and "size" not in toy._parameters
    clone = copy.deepcopy(toy)
    assert clone.size == 5 and clone.mask is Mask.CAUSAL
    assert clone.eval().training is False and clone.child.training is False
