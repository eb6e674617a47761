"""Hook points: TransformerLens's `HookPoint`, constructed faster.

A model holds dozens of hook points per block. `nn.Module.__setattr__` inspects every
attribute a HookPoint's constructor sets (hook lists, name, conversion, scales), which made
hook points most of the cost of building a model (a compiled RASP program, a preset). These
are the same class (a subclass, so TransformerLens finds them) with the same attributes,
copied from one HookPoint made at import, so they stay in step with TransformerLens."""

from __future__ import annotations

from torch import nn
from transformer_lens.hook_points import HookPoint as LensHookPoint

# the plain (non-module) attributes a TransformerLens HookPoint starts with
_START = {k: v for k, v in vars(LensHookPoint()).items() if k not in vars(nn.Module())}
_FRESH = [k for k, v in _START.items() if isinstance(v, (list, dict, set))]  # one per hook


class HookPoint(LensHookPoint):
    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.__dict__.update(_START)
        for k in _FRESH:
            self.__dict__[k] = _START[k].copy()
