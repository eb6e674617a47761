"""A faster way for modules to hold plain attributes.

`nn.Module.__setattr__` checks every assignment against parameters, buffers and submodules
(`isinstance(value, Parameter)` alone goes through Parameter's metaclass). For the dozens of
plain settings a component keeps (sizes, flags, enum kinds), that was a large share of
building a small model (a compiled RASP program builds in about a millisecond). Components
mix this in first: a number, string, bool, tuple, enum or None assigned to a name that is not
a parameter, buffer or submodule is stored directly; everything else goes through
`nn.Module` as before."""

from __future__ import annotations

from enum import Enum
from typing import Any

from torch import nn

PLAIN = (int, float, bool, str, tuple, type(None))


class PlainAttributes:
    def __setattr__(self, name: str, value: Any) -> None:
        kind = type(value)
        d = self.__dict__
        if (kind in PLAIN or issubclass(kind, Enum)) and not (
            name in d["_parameters"] or name in d["_buffers"] or name in d["_modules"]
        ):
            object.__setattr__(self, name, value)
            return
        nn.Module.__setattr__(self, name, value)
