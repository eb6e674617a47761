"""Lookup-table MLPs (Friedman, Wettig & Chen 2023, "Learning Transformer Programs"): each
table maps a pair of variables of the residual stream to a categorical value. W_in computes
each table's entry index (a linear function of the stream: one-hot values times their index,
counts as they are) into the first unit of the table's group (`hook_pre`); the entry's value,
one-hot over the group's units, is the hidden activation (`hook_post`) W_out writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from workbench.components.activations.base import Activation, Hidden, Input

if TYPE_CHECKING:
    from workbench.components.mlp import MLP


class LookupTables(Activation):
    def __init__(self, sizes: tuple[int, ...], values: int) -> None:
        self.sizes, self.values = sizes, values

    def install(self, mlp: MLP) -> None:
        mlp.W_table = nn.Parameter(torch.zeros(sum(self.sizes)))
        sizes = torch.tensor(self.sizes)
        mlp.register_buffer("table_sizes", sizes, persistent=False)
        mlp.register_buffer("table_starts", sizes.cumsum(0) - sizes, persistent=False)

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        pre = mlp.hook_pre(mlp.project_in(x))
        n, v = len(self.sizes), self.values
        index = pre.unflatten(-1, (n, v))[..., 0].round().long()
        index = torch.minimum(index.clamp(min=0), mlp.table_sizes - 1) + mlp.table_starts
        entry = mlp.W_table[index].round().long().clamp(0, v - 1)  # [batch, pos, table]
        return F.one_hot(entry, v).to(pre.dtype).flatten(-2)
