"""The operators of the textual RASP language on plain values (`rasp.parser`), with a bound on
the size of what they build.

The parser folds constant expressions as it reads them (`"ab" * 3` is `"ababab"`), and the
same operators run elementwise inside Maps and lambda bodies. Unbounded, one line such as
`x = "ab" * 1000000000;` or ten statements that each square the last number ask Python for
gigabytes. So every result holds at most `MAX_CONSTANT_SIZE` items (the characters of a
string, the elements of a list or tuple with nested ones counted, or the decimal digits of an
integer), and a repetition is refused before it is built.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from workbench.errors import InputError

MAX_CONSTANT_SIZE = 10_000

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "^": operator.pow,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_DIGITS_PER_BIT = math.log10(2)


class ConstantTooLargeError(InputError):
    """A value the program builds would exceed `MAX_CONSTANT_SIZE` items."""


def checked(op: str) -> Callable[[Any, Any], Any]:
    """The binary operator `op`, refusing results over the size limit. A closure over `op`
    (not a partial), so that Maps built from different operators get different labels."""
    compute = BINARY[op]

    def apply(x: Any, y: Any) -> Any:
        if op == "%" and isinstance(x, str):  # Python's formatting: one call builds it
            raise ConstantTooLargeError(
                f"{_show(x)} % {_show(y)} formats a string, which RASP does not do: use + to "
                "join strings"
            )
        if op == "*":
            _check(_repeat_size(x, y) or _repeat_size(y, x), f"{_show(x)} * {_show(y)}")
        if op == "^":
            _check(_power_size(x, y), f"{_show(x)} ^ {_show(y)}")
        result = compute(x, y)
        _check(size(result), f"{_show(x)} {op} {_show(y)}")
        return result

    return apply


def bounded(value: Any, what: str) -> Any:
    """`value`, if it is within the size limit (a list or tuple literal)."""
    _check(size(value), what)
    return value


def bounded_size(items: int, what: str) -> None:
    """Refuse `what` if it holds more than the limit of `items` (counted as `size` does)."""
    _check(items, what)


def size(value: Any) -> int:
    """How many items `value` holds: characters, elements (nested ones counted, so a list
    of ten lists of ten is 110; a dict's keys and values), or an integer's decimal digits;
    1 for anything else."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return len(value) + sum(size(item) for item in value)
    if isinstance(value, dict):
        return len(value) + sum(size(k) + size(v) for k, v in value.items())
    if isinstance(value, int) and not isinstance(value, bool):
        return _digits(value)
    return 1


def _digits(n: int) -> int:
    return int(abs(n).bit_length() * _DIGITS_PER_BIT) + 1


def _repeat_size(sequence: Any, times: Any) -> int:
    """The size of `sequence * times` without building it (0 unless that is a repetition,
    or a product of integers: its digits are at most the sum of theirs)."""
    if isinstance(times, bool) or not isinstance(times, int):
        return 0
    if isinstance(sequence, (str, list, tuple)):
        return max(times, 0) * size(sequence)
    if isinstance(sequence, int) and not isinstance(sequence, bool):
        return _digits(sequence) + _digits(times)
    return 0


def _power_size(base: Any, exponent: Any) -> int:
    """The digits of `base ^ exponent` for integers, without computing it (0 otherwise)."""
    whole = [isinstance(v, int) and not isinstance(v, bool) for v in (base, exponent)]
    if not all(whole) or exponent <= 1 or abs(base) <= 1:
        return 0
    return int(exponent * math.log10(abs(base))) + 1


def _show(value: Any) -> str:
    """A short description of an operand (a huge integer has no repr in Python 3.11+)."""
    items = size(value)
    if items <= 20:
        return repr(value)
    if isinstance(value, int):
        return f"an integer of {items:,} digits"
    return f"a {type(value).__name__} of {items:,} items"


def _check(items: int, what: str) -> None:
    if items > MAX_CONSTANT_SIZE:
        raise ConstantTooLargeError(
            f"{what} would hold {items:,} items (characters, elements or digits), over the "
            f"limit of {MAX_CONSTANT_SIZE:,} (rasp.operators.MAX_CONSTANT_SIZE): use a smaller "
            "value, or raise that limit if the program really needs one this large"
        )
