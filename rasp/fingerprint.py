"""What decides a RASP expression's computation, as text: the part of a label's digest
that comes from a function or constant inside the expression (`rasp.rasp` labels unnamed
expressions by kind and this digest)."""

from __future__ import annotations

import enum
import functools
import hashlib
import re
import types
from typing import Any

# the classes whose instances stand for their label (`rasp.RASPExpr`, set by `rasp.rasp`)
LABELLED: tuple[type, ...] = ()


def fingerprint(value: Any) -> str:
    """A process-independent description of a function or constant inside an expression:
    everything that decides what it computes. A function is its code, constants, closure,
    defaults and the plain values of the globals it reads; a `functools.partial` its function
    and arguments; a bound method its function and object; an object its class and state.
    What cannot be seen into (an object with no state to read and an address in its repr)
    gets a serial number in the order first seen, so two such objects never share one."""
    if isinstance(value, LABELLED):  # an expression inside (a selector in a closure)
        return value.label
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, functools.partial):
        parts = [fingerprint(value.func), *map(fingerprint, value.args)]
        keywords = sorted(value.keywords.items())
        return "partial|" + "|".join(parts + [f"{k}={fingerprint(v)}" for k, v in keywords])
    if isinstance(value, types.MethodType):
        return f"method|{fingerprint(value.__func__)}|{fingerprint(value.__self__)}"
    if isinstance(value, types.CodeType):  # a lambda's comprehension, a nested function
        return "|".join([value.co_code.hex(), *map(fingerprint, value.co_consts), *value.co_names])
    code = getattr(value, "__code__", None)
    if code is not None:
        cells = [c.cell_contents for c in (value.__closure__ or ()) if _filled(c)]
        defaults = [*(value.__defaults__ or ()), *sorted((value.__kwdefaults__ or {}).items())]
        parts = [fingerprint(code)] + [fingerprint(v) for v in (*cells, *defaults)]
        scope = getattr(value, "__globals__", {})
        read = [(n, scope[n]) for n in code.co_names if n in scope]
        parts += [f"{n}={fingerprint(v)}" for n, v in read if isinstance(v, PLAIN)]
        return "|".join(parts)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(map(fingerprint, value)) if isinstance(value, (set, frozenset)) else None
        return repr(type(value).__name__) + "|".join(items or map(fingerprint, value))
    if isinstance(value, dict):
        return "|".join(f"{fingerprint(k)}:{fingerprint(v)}" for k, v in value.items())
    if isinstance(value, types.BuiltinFunctionType):  # a bound one ({}.get) reads its object
        bound = value.__self__
        owner = "" if bound is None or isinstance(bound, types.ModuleType) else fingerprint(bound)
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}|{owner}"
    if isinstance(value, (type, types.ModuleType)):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if hasattr(value, "tobytes") and hasattr(value, "shape"):  # an array: all of it
        data = hashlib.sha256(value.tobytes()).hexdigest()
        return f"array|{value.shape}|{getattr(value, 'dtype', '')}|{data}"
    if isinstance(value, PLAIN):
        return repr(value)
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if id(value) in _VISITING:  # an object that refers back to itself
        return f"{kind}|cycle"
    _VISITING.add(id(value))
    try:
        state = _state(value)
    finally:
        _VISITING.discard(id(value))
    if state is not None:
        classes = type(value).__mro__[:-1]  # (object's own __call__ is not one)
        method = next((vars(c)["__call__"] for c in classes if "__call__" in vars(c)), None)
        return f"{kind}|{fingerprint(method) if method is not None else ''}|{state}"
    text = repr(value)
    if not re.search(r" at 0x[0-9a-f]+", text):
        return f"{kind}|{text}"
    return f"{kind}|opaque {_OPAQUE.setdefault(id(value), (len(_OPAQUE), value))[0]}"


PLAIN = (int, float, str, bool, bytes, type(None), complex)
# objects nothing can be read from, by id: (serial, the object, kept so its id is not reused)
_OPAQUE: dict[int, tuple[int, Any]] = {}
_VISITING: set[int] = set()  # the objects whose state is being read (a cycle stops there)


def _state(value: Any) -> str | None:
    """An object's attributes (its `__dict__` or slots) as a fingerprint; None if it keeps
    them where Python cannot read them."""
    names = getattr(value, "__dict__", None)
    if names is None:
        slots = [n for c in type(value).__mro__ for n in getattr(c, "__slots__", ())]
        names = {n: getattr(value, n) for n in slots if hasattr(value, n)} if slots else None
    if names is None:
        return None
    return "|".join(f"{k}={fingerprint(v)}" for k, v in sorted(names.items()))


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018  # an empty cell raises
    except ValueError:
        return False
    return True
