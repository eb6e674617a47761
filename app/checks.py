"""Checks of the values a page reads from the browser, which can be of any JSON type (a
hand-made request sends what it likes): whole numbers in a range, finite numbers, one of a
few choices, a tick box, an empty box. Each failure is an `InputError` naming the setting,
what it takes and (cut short) what it got. Every page checks its values here."""

from __future__ import annotations

import math
from collections.abc import Collection

from workbench.errors import InputError


def integer(value: object) -> int:
    """The whole number a browser value stands for (2.0 is 2); a `ValueError` for anything
    else (a bool, a string, NaN, 2.5)."""
    if not _real(value) or not math.isfinite(value) or value != int(value):  # type: ignore[arg-type]
        raise ValueError(value)
    return int(value)  # type: ignore[arg-type]


def whole(value: object, low: int, high: int, what: str) -> int:
    """A whole number in [low, high] from a number box."""
    try:
        number = integer(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InputError(
            f"the {what} must be a whole number from {low} to {high}, got {shown(value)}"
        )
    return number


def number(value: object, low: float, high: float, what: str, *, above: bool = False) -> float:
    """A finite number from `low` (or above it, if `above`) to `high` (math.inf: no upper
    bound) from a number box."""
    ok = _real(value) and math.isfinite(value)  # type: ignore[arg-type]
    if not ok or not (low < value if above else low <= value) or not value <= high:  # type: ignore[operator]
        least = f"above {low:g}" if above else f">= {low:g}"
        most = f", at most {high:g}" if math.isfinite(high) else ""
        raise InputError(f"the {what} must be a number {least}{most}, got {shown(value)}")
    return float(value)  # type: ignore[arg-type]


def choice(value: object, choices: Collection[str], what: str) -> str:
    """One of `choices` (radio buttons, a dropdown)."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"the {what} must be one of: {', '.join(choices)}; got {shown(value)}")
    return value


def ticked(value: object, option: str, what: str) -> bool:
    """Whether a checklist's `option` is ticked (its value: a list of the ticked options)."""
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"the {what} box must be ticked or not")
    return option in value


def empty(value: object) -> bool:
    """Whether a box is empty (its value None, or no text): an optional setting not given."""
    return value is None or value == ""


def shown(value: object) -> str:
    """A browser value as a message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
