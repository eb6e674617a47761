"""What the compiler raises: a construct it does not support, or a model that disagrees
with the interpreter (the validator never hands back a wrong model)."""

from __future__ import annotations

from workbench.errors import ConfigError


class UnsupportedError(ConfigError):
    """The program uses a construct the compiler cannot turn into weights; the message names
    the expression and what to do instead."""


class ValidationError(ConfigError):
    """The compiled model's output differs from the interpreter's on some input."""
