"""Typed options: one class per choice, owning its parameters and their checks.

A choice point of the config (the positional encoding, the attention kind, the MLP, the input)
is a family: an abstract base class (`PosEncoding`, ...) whose members are frozen, keyword-only
dataclasses (`Rotary(base=500.0)`, `TopK(k=64)`), each registered under its `KIND` string.
A config field annotated with a family accepts a member, its `KIND` string (the member with
default parameters: `pos="rotary"`), or a dict with the kind and parameters (JSON:
`{"kind": "rotary", "base": 500}`), and stores the member. Parameters are checked from their
annotations (workbench.fields), then by the member's `validate`; rules that involve other
config fields are the member's `check(cfg)`, which the config calls.

A member says what it is through properties of its family (`PosEncoding.rotates`,
`AttentionKind.recurrent`, ...), so code asks `cfg.pos.rotates` or matches on the class
(`case Rotary():`), never compares names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from workbench.errors import ConfigError, close_matches
from workbench.fields import Check, Parsed, field_checks

if TYPE_CHECKING:
    from workbench.config import ModelConfig


_O = TypeVar("_O", bound="Option")


def kind_of(value: Any) -> str | None:
    """The kind an option value names: an option, its kind string, or a dict with a kind."""
    if isinstance(value, Option):
        return value.KIND
    if isinstance(value, dict):
        value = value.get("kind")
    return value if isinstance(value, str) else None


def completed(given: Any, default: Option) -> Any:
    """`given` (a user's value for an option field) completed by `default`'s parameters when
    it names the same kind: the kind string alone becomes `default`, a dict keeps its own
    parameters over `default`'s. Anything else is returned as given."""
    if kind_of(given) != default.KIND or isinstance(given, Option):
        return given
    if isinstance(given, str):
        return default
    return {**default.to_json_dict(), **given}


@dataclass(frozen=True, kw_only=True)
class Option(Parsed):
    """A member of a choice family. Subclasses of a family base set `KIND`."""

    KIND: ClassVar[str] = ""
    FAMILY: ClassVar[str] = ""  # the config field the family fills, for messages
    members: ClassVar[dict[str, type[Option]]]
    _checks: ClassVar[dict[str, Check]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "KIND" in cls.__dict__:
            if cls.KIND in cls.members:
                raise TypeError(f"{cls.FAMILY} kind {cls.KIND!r} is defined twice")
            cls.members[cls.KIND] = cls
        elif "FAMILY" in cls.__dict__:  # a family base
            cls.members = {}

    def __post_init__(self) -> None:
        checks = type(self).__dict__.get("_checks")
        if checks is None:  # compiled once per class, on first use
            checks = field_checks(type(self))
            type.__setattr__(type(self), "_checks", checks)
        for name, check in checks.items():
            value = getattr(self, name)
            checked = check(f"{self.FAMILY}.{name}", value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        self.validate()

    def validate(self) -> None:
        """Rules between this option's own parameters."""

    def check(self, cfg: ModelConfig) -> None:
        """Rules between this option and the rest of the config `cfg`."""

    def replace(self: _O, **changes: Any) -> _O:
        return dataclasses.replace(self, **changes)

    def tiny(self: _O) -> _O:
        """This option in a preset's tiny twin (small sizes, same choice)."""
        return self

    @property
    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str | dict[str, Any]:
        """The kind string, or the kind with every parameter (tuples as lists)."""
        return self.to_json_dict() if dataclasses.fields(self) else self.KIND

    def to_json_dict(self) -> dict[str, Any]:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return {"kind": self.KIND, **params}

    def __str__(self) -> str:
        return self.KIND

    @classmethod
    def parse(cls, name: str, value: Any) -> Option:
        """The member `value` names (a member, its kind string, or a dict with `kind` and
        parameters), or `ConfigError` naming the choices."""
        if isinstance(value, cls):
            return value
        choices = ", ".join(cls.members)
        if isinstance(value, Option):
            raise ConfigError(
                f"{name}={value!r} is a {type(value).__mro__[1].__name__}, not a {cls.__name__}; "
                f"choose one of: {choices}"
            )
        params: dict[str, Any] = {}
        kind = value
        if isinstance(value, dict):
            params = dict(value)
            kind = params.pop("kind", None)
            if kind is None:
                raise ConfigError(
                    f"{name}={value!r} names no 'kind' of {cls.__name__}; choose one of: {choices}"
                )
        if not isinstance(kind, str) or kind not in cls.members:
            near = ""
            if isinstance(kind, str) and kind.strip().lower() in cls.members:
                near = f"; did you mean {kind.strip().lower()!r}?"
            raise ConfigError(
                f"{name}={kind!r} ({type(kind).__name__}) is not a {cls.__name__}{near}; "
                f"choose one of: {choices}"
            )
        return cls.members[kind].create(name, params)

    @classmethod
    def create(cls, name: str, params: dict[str, Any]) -> Option:
        """This member with `params` (from a dict or the kind string alone)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - fields.keys())
        if unknown:
            have = ", ".join(fields) or "none"
            raise ConfigError(
                f"{name}={cls.KIND!r} has no parameter {unknown[0]!r} "
                f"(did you mean {close_matches(unknown[0], fields)}?); its parameters: {have}"
            )
        missing = [
            n
            for n, f in fields.items()
            if n not in params
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            example = ", ".join(f"{n!r}: ..." for n in missing)
            raise ConfigError(
                f"{name}={cls.KIND!r} needs {', '.join(missing)}: write "
                f"{{'kind': {cls.KIND!r}, {example}}} or {cls.__name__}({missing[0]}=...)"
            )
        return cls(**params)
