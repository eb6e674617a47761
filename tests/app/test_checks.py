"""The checks of browser values (`app.checks`), which every page uses: any JSON value in,
a number or choice out, or an `InputError` naming the setting, what it takes and what it
got (cut short)."""

from __future__ import annotations

import math

import pytest

from app.checks import choice, empty, integer, number, shown, ticked, whole
from workbench.errors import InputError

GARBAGE = [None, True, "3", [3], {"a": 3}, float("nan"), 1e999, 2.5]


def test_whole_numbers() -> None:
    assert whole(3, 1, 5, "count") == 3 and whole(3.0, 1, 5, "count") == 3
    assert isinstance(whole(3.0, 1, 5, "count"), int)
    for value in [*GARBAGE, 0, 6]:
        with pytest.raises(InputError, match=r"the count must be a whole number from 1 to 5, got"):
            whole(value, 1, 5, "count")
    for value in GARBAGE:
        with pytest.raises(ValueError):
            integer(value)
    assert integer(-7.0) == -7


def test_numbers() -> None:
    assert number(0, 0, math.inf, "threshold") == 0.0
    with pytest.raises(
        InputError, match="the tolerance must be a number above 0, at most 1, got 0"
    ):
        number(0, 0, 1, "tolerance", above=True)
    for value in [*GARBAGE[:-1], -1, 2]:
        with pytest.raises(InputError, match=r"the x must be a number >= 0, at most 1, got "):
            number(value, 0, 1, "x")
    with pytest.raises(InputError, match=r"must be a number >= 0, got inf$"):
        number(math.inf, 0, math.inf, "threshold")


def test_choices_boxes_and_what_a_message_shows() -> None:
    assert choice("b", ["a", "b"], "letter") == "b"
    for value in [None, ["a"], "c", 1]:
        with pytest.raises(InputError, match=r"the letter must be one of: a, b; got "):
            choice(value, ["a", "b"], "letter")
    assert (
        ticked(["on"], "on", "box")
        and not ticked([], "on", "box")
        and not ticked(None, "on", "box")
    )
    with pytest.raises(InputError, match="the box box must be ticked or not"):
        ticked("on", "on", "box")
    assert empty(None) and empty("") and not empty(0) and not empty([])
    assert shown("x" * 1000) == repr("x" * 1000)[:37] + "..." and shown(None) == "None"
