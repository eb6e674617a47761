"""What the textual RASP language's operators and built-in calls build (`rasp.language`
runs the statements): on atoms they compute at once, within the size limit of
`rasp.operators`; on sequences they build the expressions of `rasp.rasp` elementwise, with
the official interpreter's meaning (see `rasp.language`)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rasp import rasp
from rasp.operators import bounded, checked

ATOMS = (int, float, str, bool)


class LanguageError(Exception):
    """A program that does not make sense (raised as a `RASPSyntaxError` with its place)."""


@dataclass
class Primitive:
    """A built-in function that names can hold and a program can replace (the library's
    `selector_width`)."""

    name: str
    params: list[str]
    call: Callable[..., Any]
    creator: str = "rasplib"


# ----- built-in calls --------------------------------------------------------------------


def _aggregate(*args: Any) -> rasp.SOp:
    if len(args) not in (2, 3):
        raise LanguageError(f"aggregate takes (selector, sequence[, default]), got {len(args)}")
    selector, values, default = (*args, 0) if len(args) == 2 else args
    if not isinstance(selector, rasp.Selector):
        raise LanguageError(f"aggregate's first argument is a selector, got {describe(selector)}")
    if not isinstance(default, ATOMS):
        raise LanguageError(f"aggregate's default is an atom, got {describe(default)}")
    return rasp.Aggregate(selector, sequence(values), default)


def primitives() -> dict[str, Any]:
    """The library's names that are not written in RASP: `length` and `selector_width`."""
    return {
        "length": rasp.length,
        "selector_width": Primitive("selector_width", ["sel"], _selector_width),
    }


def _selector_width(*args: Any) -> rasp.SOp:
    if len(args) != 1 or not isinstance(args[0], rasp.Selector):
        raise LanguageError("selector_width takes one selector")
    return rasp.SelectorWidth(args[0])


def _range(*args: Any) -> list[int]:
    if len(args) not in (1, 2, 3) or not all(isinstance(a, int) for a in args):
        raise LanguageError(f"range takes 1 to 3 integers, got {list(args)!r}")
    return bounded(list(range(*args)), "this range")


def _zip(*lists: Any) -> list[list[Any]]:
    if not lists or not all(isinstance(x, list) for x in lists):
        raise LanguageError("zip takes lists")
    if len({len(x) for x in lists}) > 1:
        raise LanguageError(f"zip takes lists of one length, got {[len(x) for x in lists]}")
    return [list(items) for items in zip(*lists, strict=True)]


def _len(*args: Any) -> int:
    if len(args) != 1 or not isinstance(args[0], list):
        raise LanguageError("len takes one list")
    return len(args[0])


def _round(*args: Any) -> Any:
    (value,) = _one("round", args)
    if isinstance(value, rasp.SOp):
        return rasp.Map(round, value)
    return round(value)


def _indicator(*args: Any) -> rasp.SOp:
    (value,) = _one("indicator", args)
    if not isinstance(value, rasp.SOp):
        raise LanguageError(f"indicator takes a sequence, got {describe(value)}")
    return rasp.Map(_indicate, value)


def _indicate(x: Any) -> int:
    return 1 if x else 0


def _one(name: str, args: tuple) -> tuple:
    if len(args) != 1:
        raise LanguageError(f"{name} takes one argument, got {len(args)}")
    return args


BUILTIN_CALLS: dict[str, Callable[..., Any]] = {
    "aggregate": _aggregate,
    "range": _range,
    "zip": _zip,
    "len": _len,
    "round": _round,
    "indicator": _indicator,
}


# ----- operators -------------------------------------------------------------------------


def sequence(value: Any) -> rasp.SOp:
    """A sequence as it is; an atom as the constant sequence of it."""
    if isinstance(value, rasp.SOp):
        return value
    if isinstance(value, ATOMS):
        return rasp.Full(value)
    raise LanguageError(f"expected a sequence or an atom, got {describe(value)}")


def select(keys: Any, queries: Any, op: Any) -> rasp.Select:
    if isinstance(op, bool):  # `True` and `False` read as values: the predicates
        op = rasp.Comparison.TRUE if op else rasp.Comparison.FALSE
    if not isinstance(op, rasp.Comparison):
        raise LanguageError("select's third argument is a comparison: == != < <= > >=")
    return rasp.Select(sequence(keys), sequence(queries), op)


def apply(op: str, left: Any, right: Any) -> Any:
    if isinstance(left, rasp.Selector) or isinstance(right, rasp.Selector):
        raise LanguageError(f"{op} does not apply to selectors; combine them with and, or, not")
    if op in ("+", "-") and all(_is_numerical_sop(x) for x in (left, right)):
        # the sum or difference of two numerical sequences is linear: one MLP computes it,
        # where a SequenceMap would need a lookup table over numbers (tracr does the same)
        return rasp.LinearSequenceMap(left, right, 1, 1 if op == "+" else -1)
    return _combine(checked(op), left, right)


def sign(op: str, value: Any) -> Any:
    """`-x` or `+x`: Python's negation (so -0.0 stays -0.0), elementwise on a sequence."""
    f = operator.neg if op == "-" else operator.pos
    if isinstance(value, rasp.Selector):
        raise LanguageError(f"{op} does not apply to selectors")
    return rasp.Map(f, value) if isinstance(value, rasp.SOp) else f(value)


def _is_numerical_sop(value: Any) -> bool:
    return isinstance(value, rasp.SOp) and rasp.is_numerical(value)


def _combine(f: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    """f elementwise: a SequenceMap of two sequences, a Map of one, or f of two values."""
    if isinstance(left, rasp.SOp) and isinstance(right, rasp.SOp):
        return rasp.SequenceMap(f, left, right)
    if isinstance(left, rasp.SOp):
        return rasp.Map(lambda x: f(x, right), left)
    if isinstance(right, rasp.SOp):
        return rasp.Map(lambda y: f(left, y), right)
    return f(left, right)


def _both(x: Any, y: Any) -> bool:
    return bool(x) and bool(y)


def _either(x: Any, y: Any) -> bool:
    return bool(x) or bool(y)


def logic(op: str, left: Any, right: Any) -> Any:
    selectors = [isinstance(x, rasp.Selector) for x in (left, right)]
    if all(selectors):
        return left & right if op == "and" else left | right
    if any(selectors):
        raise LanguageError("and/or combine two selectors or two sequences, not one of each")
    if any(isinstance(x, rasp.SOp) for x in (left, right)):
        return _combine(_both if op == "and" else _either, left, right)
    return (left and right) if op == "and" else (left or right)


def _negate(x: Any) -> bool:
    return not x


def negation(value: Any) -> Any:
    if isinstance(value, rasp.Selector):
        return ~value
    if isinstance(value, rasp.SOp):
        return rasp.Map(_negate, value)
    return not value


def annotated(encoding: str, value: Any) -> rasp.SOp:
    if not isinstance(value, rasp.SOp):
        raise LanguageError(f"{encoding} applies to a sequence, got {describe(value)}")
    wanted = rasp.Encoding(encoding)
    if rasp.get_encoding(value) is wanted:
        return value
    # a named sequence seen with another encoding is another SOp: unnamed, so that its
    # label (a digest that includes the encoding) is its own
    return rasp.annotate(value, **{rasp.NAME: None, rasp.ENCODING: wanted})


def pair(x: Any, y: Any) -> tuple[Any, Any]:
    return (x, y)


def choose(then_and_test: tuple[Any, Any], otherwise: Any) -> Any:
    then, test = then_and_test
    return then if test else otherwise


def contains(item: Any, container: Any) -> Any:
    if isinstance(item, rasp.SOp):
        if not isinstance(container, list) or not all(isinstance(c, ATOMS) for c in container):
            raise LanguageError(f"a sequence is `in` a list of atoms, got {describe(container)}")
        options = tuple(container)
        return rasp.Map(lambda x: x in options, item)
    if isinstance(item, ATOMS):
        if isinstance(container, list):
            return item in container
        if isinstance(container, rasp.SOp):  # anywhere: how many keys hold it, above 0
            holding = rasp.Select(container, rasp.Full(item), rasp.Comparison.EQ)
            return rasp.Map(_positive, rasp.SelectorWidth(holding))
        raise LanguageError(f"an atom is `in` a list or a sequence, got {describe(container)}")
    raise LanguageError(f"`in` tests a sequence or an atom, got {describe(item)}")


def _positive(count: int) -> bool:
    return count > 0


def index(container: Any, key: Any) -> Any:
    if isinstance(container, rasp.SOp):
        if not isinstance(key, int):
            got = key.label if isinstance(key, rasp.RASPExpr) else atom_text(key)
            raise LanguageError(f"index into sequence has to be integer, got: {got}")
        where = rasp.Full(key) if key >= 0 else rasp.Map(lambda n: n + key, rasp.length)
        return rasp.Aggregate(rasp.Select(rasp.indices, where, rasp.Comparison.EQ), container, 0)
    if isinstance(container, (list, str, dict)):
        if isinstance(key, rasp.SOp):
            return rasp.Map(_lookup(container), key)
        return _lookup(container)(key)
    if isinstance(container, tuple):  # a lambda body's tuple
        return container[key]
    raise LanguageError(f"only lists, dicts, strings and sequences are indexed, not {container!r}")


def _lookup(container: list | str | dict) -> Callable[[Any], Any]:
    def look(key: Any) -> Any:
        if isinstance(container, dict):
            if not isinstance(key, ATOMS) or key not in container:
                raise LanguageError(f"index [ {atom_text(key)} ] not in dict.")
            return container[key]
        if not isinstance(key, int):
            raise LanguageError(f"a list's or string's index is an integer, got {key!r}")
        if not -len(container) <= key < len(container):
            raise LanguageError(f"index {key} is out of range for length {len(container)}")
        return container[key]

    return look


def atom_text(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def describe(value: Any) -> str:
    if isinstance(value, rasp.SOp):
        return f"the sequence {value.label}"
    if isinstance(value, rasp.Selector):
        return f"the selector {value.label}"
    return repr(value)
