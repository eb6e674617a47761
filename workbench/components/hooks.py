"""Hook points: TransformerLens's `HookPoint`, constructed faster, with checked edits.

Each hook point declares its dimensions' names (`HookPoint("batch", "pos", "d_model")`).

A model holds dozens of hook points per block. `nn.Module.__setattr__` inspects every
attribute a HookPoint's constructor sets (hook lists, name, conversion, scales), which made
hook points most of the cost of building a model (a compiled RASP program, a preset). These
are the same class (a subclass, so TransformerLens finds them) with the same attributes,
copied from one HookPoint made at import, so they stay in step with TransformerLens.

A forward hook that returns a tensor replaces the activation, and a replacement of the wrong
shape often broadcasts or slices its way through the rest of the run: wrong numbers, no error.
Every forward hook is therefore wrapped, where it is added (`run_with_hooks`, `model.hooks`,
`add_hook` all end in `HookPoint.add_hook`), in a check that its result has the shape, dtype
and device of what it was given. The unhooked forward pass does not pay for it."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint as LensHookPoint
from transformer_lens.hook_points import LensHandle

from workbench.errors import InputError

# the plain (non-module) attributes a TransformerLens HookPoint starts with
_START = {k: v for k, v in vars(LensHookPoint()).items() if k not in vars(nn.Module())}
_FRESH = [k for k, v in _START.items() if isinstance(v, (list, dict, set))]  # one per hook


RESID = ("batch", "pos", "d_model")


class HookPoint(LensHookPoint):
    """A hook point that declares the names of its activation's dimensions (the glossary's:
    batch, pos, head, d_head, ...): the hook schema is read from these (workbench.schema)."""

    dims: tuple[str, ...]

    def __init__(self, *dims: str) -> None:
        nn.Module.__init__(self)
        self.__dict__.update(_START)
        self.__dict__["dims"] = dims
        for k in _FRESH:
            self.__dict__[k] = _START[k].copy()

    def add_hook(
        self, hook: Any, dir: Literal["fwd", "bwd"] = "fwd", *args: Any, **kwargs: Any
    ) -> LensHandle:
        """TransformerLens's `add_hook`; a forward hook's result is checked (`CheckedHook`).
        Returns the new handle (TransformerLens 4 returns it; 3 returns None and keeps it
        in the hook list, from which it is read)."""
        fn = CheckedHook(hook) if dir == "fwd" else hook
        handle: LensHandle | None = super().add_hook(fn, dir, *args, **kwargs)
        if handle is None:
            prepend = kwargs.get("prepend", len(args) > 2 and args[2])
            handle = (self.fwd_hooks if dir == "fwd" else self.bwd_hooks)[0 if prepend else -1]
        if dir == "fwd":
            handle.user_hook = hook  # what `list_hooks` shows: the caller's own function
        return handle


class CheckedHook:
    """A forward hook whose result must be None or a tensor like the activation it was given."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, tensor: Any, *, hook: Any) -> Any:
        out = self.fn(tensor, hook=hook)
        if out is None or out is tensor or not isinstance(tensor, Tensor):
            return out
        if (
            isinstance(out, Tensor)
            and out.shape == tensor.shape
            and out.dtype == tensor.dtype
            and out.device == tensor.device
        ):
            return out
        raise InputError(self._mismatch(tensor, out, hook))

    def _mismatch(self, tensor: Tensor, out: Any, hook: Any) -> str:
        expected = _describe(tensor)
        got = _describe(out) if isinstance(out, Tensor) else f"{type(out).__name__} {out!r:.40}"
        return (
            f"the forward hook {_name(self.fn)} at {getattr(hook, 'name', None)!r} returned "
            f"{got}; the hook point holds {expected}. A forward hook returns None (to leave "
            "the activation as it is) or a tensor of the same shape, dtype and device (e.g. "
            "an edited copy: x = x.clone(); x[...] = ...; return x)"
        )

    def __repr__(self) -> str:  # TransformerLens names the torch hook after this
        if isinstance(self.fn, partial):  # as TransformerLens does: a partial's repr is slow
            return f"partial({self.fn.func!r},...)"
        return repr(self.fn)


def _describe(t: Tensor) -> str:
    return f"a tensor of shape {list(t.shape)}, {t.dtype}, on {t.device}"


def _name(fn: Any) -> str:
    inner = fn.func if isinstance(fn, partial) else fn
    return getattr(inner, "__qualname__", None) or type(inner).__name__
