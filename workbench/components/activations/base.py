"""What an MLP kind provides to `workbench.components.mlp.MLP`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxtyping import Float
from torch import Tensor

if TYPE_CHECKING:
    from workbench.components.mlp import MLP

Input = Float[Tensor, "batch pos d_model"]
Hidden = Float[Tensor, "batch pos d_mlp"]


class Activation:
    """The hidden layer of an MLP: from the MLP's input to the activation that `hook_post`
    sees and `W_out` reads."""

    def install(self, mlp: MLP) -> None:
        """Register this kind's own parameters and hook points on `mlp`."""

    def hidden(self, mlp: MLP, x: Input) -> Hidden:
        """The hidden activation; `mlp.hook_pre` sees its pre-activation."""
        raise NotImplementedError
