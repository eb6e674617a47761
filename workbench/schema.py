"""The hook schema: every hook point of a model, with its dimensions, from the config alone.

Read from the modules themselves: the model is built on PyTorch's meta device (no memory, no
numbers) and run once on a meta input of its kind, and the hook points are listed in the order
the run reaches them, each with the dimensions it declares (`HookPoint("batch", "pos",
"d_model")`) and their sizes from the config. A hook point the run does not reach is an error,
so the schema is the model's, by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from workbench.components.hooks import HookPoint
from workbench.config import ModelConfig
from workbench.options import Patches, Series


@dataclass(frozen=True)
class HookSpec:
    """One hook point: its name, the names of its dimensions, and their sizes (None: varies)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "dims": list(self.dims), "shape": list(self.shape)}


def hook_schema(cfg: ModelConfig) -> list[HookSpec]:
    """All hook points of a model built from `cfg`, in forward order."""
    return list(_schema(cfg))


@lru_cache(maxsize=512)
def _schema(cfg: ModelConfig) -> tuple[HookSpec, ...]:
    from workbench.model import Transformer  # the model module imports this one

    sizes: dict[str, int | None] = {
        "batch": None,
        "pos": None,
        "query_pos": None,
        "key_pos": None,
        "head": cfg.n_heads,
        "kv_head": cfg.kv_heads,
        "d_head": cfg.d_head,
        "d_model": cfg.d_model,
        "d_mlp": cfg.d_mlp,
        "d_vocab": cfg.vocab_out,  # the logits' width
        "patch": cfg.n_patches,
        "one": 1,
    }
    with torch.device("meta"):
        model = Transformer(cfg)
        reached: list[str] = []
        model.run_with_hooks(
            _meta_input(cfg),
            fwd_hooks=[(lambda _: True, lambda _, hook: reached.append(hook.name))],
            validate=False,
        )
    dims = {name: _dims(point) for name, point in model.hook_dict.items()}
    missed = sorted(set(dims) - set(reached))
    if missed:
        raise AssertionError(f"hook points no forward pass reaches: {missed}")
    return tuple(
        HookSpec(name, dims[name], tuple(sizes[d] for d in dims[name]))
        for name in dict.fromkeys(reached)
    )


def _dims(point: object) -> tuple[str, ...]:
    if not isinstance(point, HookPoint):  # a TransformerLens hook point declares none
        raise AssertionError(f"{point!r} is not a workbench HookPoint with declared dims")
    return point.dims


def _meta_input(cfg: ModelConfig) -> torch.Tensor:
    """A two-position input of the model's kind, on the meta device."""
    match cfg.input:
        case Patches(image_size=size, channels=channels):
            return torch.zeros(1, channels, size, size)
        case Series(lookback=lookback):
            return torch.zeros(1, lookback, 2)
    return torch.zeros(1, 2, dtype=torch.long)


def schema_json(cfg: ModelConfig) -> str:
    return json.dumps([s.to_json() for s in hook_schema(cfg)], indent=1)
