"""Pointwise activations: GELU (Hendrycks & Gimpel 2016; exact, or its tanh approximation),
ReLU, and top-k ReLU (Li et al. 2023, "The Lazy Neuron Phenomenon", the Top-k Transformer),
which keeps the k largest activations per token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from workbench.components.activations.base import Activation, Hidden, Input

if TYPE_CHECKING:
    from workbench.components.mlp import MLP


def gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_tanh": gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
}


class Pointwise(Activation):
    def __init__(self, fn: str) -> None:
        self.fn = FUNCTIONS[fn]

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        return self.fn(mlp.hook_pre(mlp.project_in(x)))


def top_k_relu(pre: Float[Tensor, "... d_mlp"], k: int) -> Float[Tensor, "... d_mlp"]:
    """relu(pre) with all but the k largest entries of each row set to zero."""
    act = F.relu(pre)
    values, index = act.topk(k, dim=-1)
    return torch.zeros_like(act).scatter(-1, index, values)


class TopKRelu(Activation):
    """`hook_post` holds the activation after the other units are zeroed."""

    def __init__(self, k: int) -> None:
        self.k = k

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        return top_k_relu(mlp.hook_pre(mlp.project_in(x)), self.k)
