"""Error types of the workbench. Each message names the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorkbenchError(Exception):
    """Base class: bad input to the workbench."""


class ConfigError(WorkbenchError, ValueError):
    """An architecture config that cannot be built."""


class UnknownNameError(WorkbenchError, KeyError):
    """A preset, task, model or hook name that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class InputError(WorkbenchError, ValueError):
    """Tokens or tensors of the wrong shape, dtype or range."""


class CheckpointError(WorkbenchError, ValueError):
    """A checkpoint directory that cannot be restored."""


class ConvertError(CheckpointError):
    """A Hugging Face checkpoint the workbench cannot reproduce exactly."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> str:
    """The closest choices to `name`, formatted for an error message."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not found:
        found = [c for c in choices if name.lower() in c.lower()][:n]
    return ", ".join(repr(c) for c in found) if found else "(no close match)"


def unknown(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    choices = sorted(choices)
    return UnknownNameError(
        f"unknown {kind} {name!r}; closest: {close_matches(name, choices)}. "
        f"All {len(choices)} {kind}s: {', '.join(choices)}"
    )


class JobLeaseError(WorkbenchError):
    """A job that another live process runs (its lease has not expired), or that another
    process took over from this one."""


def check_value(ok: bool, name: str, value: object, valid: str) -> None:
    """Raise `InputError` naming the option, its valid range and the value given, unless
    `ok` (e.g. `check_value(k >= 1, "--top-k", k, "an integer >= 1")`)."""
    if not ok:
        raise InputError(f"{name} must be {valid}, got {value!r}")
