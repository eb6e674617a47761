"""Checked config fields: each field's type and range come from its annotation.

A frozen config is built from Python keywords, JSON (checkpoints) and the CLI's `--set KEY=VALUE`
(JSON, else the raw string), so a field can arrive as the wrong kind of thing: the string
"False" is truthy, 0.0 is a float where a size is wanted, NaN passes every comparison. The
annotations already say what each field holds; `field_checks` compiles them, once per class, into
one check per field, so a new field is checked by declaring it, with no second list to keep.

The numeric annotations carry their range (`typing.Annotated`): `PositiveInt` is an int >= 1,
`PositiveFloat` a finite float > 0. Every float must be finite. Accepted, and normalised:
integers from numpy (as int), ints where a float is wanted (as float), lists where a tuple is
wanted (JSON has no tuples), and an enum's exact value string (as the member). Refused: bools
where a number is wanted and numbers where a bool is wanted (`True` is not a size, `1` and
"False" are not flags)."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from workbench.errors import ConfigError

Check = Callable[[str, Any], Any]  # (field name, value) -> the value as stored, or raise


@dataclass(frozen=True)
class Range:
    """The values a numeric field accepts: above `low` (strictly, or from it)."""

    low: float = -math.inf
    strict: bool = False

    def holds(self, value: float) -> bool:
        return value > self.low if self.strict else value >= self.low


class Parsed:
    """A config value that parses itself: a typed option (workbench.options), a layer
    override. A field annotated with a subclass is checked by its `parse`."""

    @classmethod
    def parse(cls, name: str, value: Any) -> Any:
        raise NotImplementedError


PositiveInt = Annotated[int, Range(1)]  # a size or a count of things
NonNegativeInt = Annotated[int, Range(0)]  # 0 means "none" or "not used"
PositiveFloat = Annotated[float, Range(0.0, strict=True)]  # an epsilon, a base, a scale
FiniteFloat = Annotated[float, Range()]  # any finite number


def field_checks(cls: type) -> dict[str, Check]:
    """One check per field of the dataclass `cls`, compiled from its annotations."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: _compile(hints[f.name])[0] for f in dataclasses.fields(cls)}


def _compile(hint: Any) -> tuple[Check, str]:
    """The check of a field annotated `hint`, and the words for what it accepts."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"config fields take one type (or it | None), not {hint}")
        check, what = _compile(inner[0])
        what += ", or None"

        def optional(name: str, value: Any, what: str = what) -> Any:
            return None if value is None else check(name, value, what)  # type: ignore[call-arg]

        return optional, what
    bounds = Range()
    if typing.get_origin(hint) is Annotated:
        hint, *extras = typing.get_args(hint)
        bounds = next(e for e in extras if isinstance(e, Range))
    if typing.get_origin(hint) is tuple:
        item, dots = typing.get_args(hint)
        if dots is not Ellipsis:
            raise TypeError(f"tuple config fields hold any number of one type, not {hint}")
        item_check, item_what = _compile(item)
        what = f"a tuple (or list) whose items are each {item_what}"
        return _tuple_check(item_check, what), what
    if isinstance(hint, type) and issubclass(hint, Parsed):
        return (lambda name, value, what="": hint.parse(name, value)), f"a {hint.__name__}"
    if hint is bool:
        return _bool_check, "a bool (true or false)"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_check(hint), f"a {hint.__name__}"
    if hint is int:
        what = _describe_int(bounds)
        return _int_check(bounds, what), what
    if hint is float:
        what = _describe_float(bounds)
        return _float_check(bounds, what), what
    raise TypeError(
        f"config fields hold bool, int, float, an enum, an option or a tuple, not {hint}"
    )


def _bool_check(name: str, value: Any, what: str = "a bool (true or false)") -> bool:
    if type(value) is bool:
        return value
    raise _bad(name, value, what)


def _int_check(bounds: Range, what: str) -> Check:
    def check(name: str, value: Any, what: str = what) -> int:
        number = value
        if type(value) is not int:  # numpy integers are fine; bools and floats are not
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise _bad(name, value, what)
            number = int(value)
        if not bounds.holds(number):
            raise _bad(name, value, what)
        return number

    return check


def _float_check(bounds: Range, what: str) -> Check:
    def check(name: str, value: Any, what: str = what) -> float:
        number = value
        if type(value) is not float:  # ints are fine, bools are not
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise _bad(name, value, what)
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                raise _bad(name, value, what) from None
        if not (math.isfinite(number) and bounds.holds(number)):
            raise _bad(name, value, what)
        return number

    return check


def _enum_check(kind: type[enum.Enum]) -> Check:
    members = {m.value: m for m in kind}
    choices = ", ".join(map(str, members))

    def check(name: str, value: Any, what: str = "") -> enum.Enum:
        if type(value) is kind:
            return value
        if type(value) is str and value in members:  # JSON, the CLI, keyword shorthand
            return members[value]
        got = f"{value!r} ({type(value).__name__})"
        near = ""
        if isinstance(value, str) and value.strip().lower() in members:  # values: lower case
            near = f"; did you mean {value.strip().lower()!r}?"
        raise ConfigError(f"{name}={got} is not a {kind.__name__}{near}; choose one of: {choices}")

    return check


def _tuple_check(item: Check, what: str) -> Check:
    def check(name: str, value: Any, what: str = what) -> tuple:
        if not isinstance(value, tuple | list):
            raise _bad(name, value, what)
        return tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))

    return check


def _describe_int(bounds: Range) -> str:
    if bounds.low == -math.inf:
        return "an integer"
    low = math.floor(bounds.low) + 1 if bounds.strict else math.ceil(bounds.low)
    return "a positive integer (>= 1)" if low == 1 else f"an integer >= {low}"


def _describe_float(bounds: Range) -> str:
    if bounds.low == -math.inf:
        return "a finite number"
    return f"a finite number {'>' if bounds.strict else '>='} {bounds.low:g}"


def _bad(name: str, value: Any, what: str) -> ConfigError:
    got = f"{value!r} ({type(value).__name__})"
    return ConfigError(f"{name} must be {what}, got {got}{_hint(name, value, what)}")


def _hint(name: str, value: Any, what: str) -> str:
    """How to write what was probably meant."""
    flag = what.startswith("a bool")
    if flag and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        word = value.strip().lower()
        return (
            f"; the string {value!r} is not a bool: write {word} unquoted (JSON, "
            f"--set {name}={word}) or {word.capitalize()} in Python"
        )
    if flag and type(value) is int and value in (0, 1):
        word = "true" if value else "false"
        return f"; write {word} (JSON) or {word.capitalize()} (Python), not {value}"
    if not flag and isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return ""
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            return f"; write the number {value.strip()} unquoted, not the string {value!r}"
    if type(value) is float and value.is_integer() and "integer" in what:
        return f"; write {int(value)}, not {value}"
    return ""
