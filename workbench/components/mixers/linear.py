"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): phi(q).phi(k) with
phi = elu + 1, normalised by row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.components.mixers.base import Hidden, Mixer, Pattern

if TYPE_CHECKING:
    from workbench.components.attention import Attention, Inputs


class LinearMixer(Mixer):
    def mix(self, attn: Attention, q: Tensor, k: Tensor, x: Inputs, hidden: Hidden) -> Pattern:
        kernel = torch.einsum("bqhe,bkhe->bhqk", F.elu(q) + 1, F.elu(k) + 1)
        if hidden is not None:
            kernel = kernel.masked_fill(hidden, 0.0)
        kernel = attn.hook_attn_scores(kernel)
        return kernel / kernel.sum(-1, keepdim=True)
