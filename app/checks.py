"""Checks of the values a page reads from the browser, which can be of any JSON type (a
hand-made request sends what it likes): whole numbers in a range, finite numbers, one of a
few choices, a tick box. Each failure is an `InputError` naming the setting and what it
takes."""

from __future__ import annotations

import math
from collections.abc import Collection

from workbench.errors import InputError


def whole(value: object, low: int, high: int, what: str) -> int:
    """A whole number in [low, high] from a number box."""
    if not _real(value) or not math.isfinite(value) or value != int(value):  # type: ignore[arg-type]
        raise InputError(f"the {what} must be a whole number from {low} to {high}")
    number = int(value)  # type: ignore[arg-type]
    if not low <= number <= high:
        raise InputError(f"the {what} must be a whole number from {low} to {high}, got {number}")
    return number


def number(value: object, low: float, high: float, what: str) -> float:
    """A finite number in (low, high] from a number box."""
    if not _real(value) or not low < value <= high:  # type: ignore[operator]  # NaN fails too
        raise InputError(f"the {what} must be a number above {low:g}, at most {high:g}")
    return float(value)  # type: ignore[arg-type]


def choice(value: object, choices: Collection[str], what: str) -> str:
    """One of `choices` (radio buttons, a dropdown)."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"choose a {what} among: {', '.join(choices)}")
    return value


def ticked(value: object, option: str, what: str) -> bool:
    """Whether a checklist's `option` is ticked (its value: a list of the ticked options)."""
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"the {what} box must be ticked or not")
    return option in value


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
