"""The GLU family SwiGLU, GEGLU and ReGLU (Shazeer 2020, "GLU Variants Improve Transformer"):
act(x W_gate) * (x W_in). `hook_pre` is the gate's pre-activation, `hook_pre_linear` the
linear branch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from workbench.components.activations.base import Activation, Hidden, Input
from workbench.components.activations.pointwise import FUNCTIONS
from workbench.components.hooks import HookPoint

if TYPE_CHECKING:
    from workbench.components.mlp import MLP


class Glu(Activation):
    def __init__(self, fn: str, d_model: int, d_mlp: int) -> None:
        self.fn, self.d_model, self.d_mlp = FUNCTIONS[fn], d_model, d_mlp

    def install(self, mlp: MLP) -> None:
        mlp.W_gate = nn.Parameter(torch.empty(self.d_model, self.d_mlp))
        mlp.hook_pre_linear = HookPoint("batch", "pos", "d_mlp")

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        gate = mlp.hook_pre(x @ mlp.W_gate)
        return self.fn(gate) * mlp.hook_pre_linear(mlp.project_in(x))
