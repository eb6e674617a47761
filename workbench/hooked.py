"""The model that analyses running on any TransformerLens model take (a workbench
`Transformer`, a `TransformerBridge` around a Hugging Face model): `run_with_cache`, and a
`cfg` with the sizes and the device. `HookedRootModule` declares no `cfg` (nn.Module types an
undeclared attribute as `Tensor | Module`), so these analyses take this protocol instead."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class HookedConfig(Protocol):
    """The fields of `model.cfg` that TransformerLens models share (the workbench's
    `workbench.lens.config.TLConfig`, TransformerLens's `HookedTransformerConfig` and
    `TransformerBridgeConfig`)."""

    @property
    def n_layers(self) -> int: ...

    @property
    def n_heads(self) -> int: ...

    @property
    def d_model(self) -> int: ...

    @property
    def device(self) -> torch.device | str | None: ...


@runtime_checkable
class HookedModel(Protocol):
    """A TransformerLens model as hook-only analyses use it."""

    @property
    def cfg(self) -> HookedConfig: ...

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any: ...
