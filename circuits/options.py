"""The circuits API's choices as typed options. Each is a StrEnum, so the CLI, JSON and the
job store keep their strings; text is parsed once where it comes in (the CLI, the job store,
the dashboard, a notebook's call), and the engine only sees members."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from workbench.errors import InputError

E = TypeVar("E", bound=StrEnum)


def parse(kind: type[E], value: object, error: str) -> E:
    """`value` as a member of `kind`, or an `InputError` of `error` (formatted with the
    value's repr and the valid names: `{value}`, `{choices}`)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InputError(error.format(value=repr(value), choices=choices)) from None


class Method(StrEnum):
    """A discovery job's method (`workbench discover --method`)."""

    ACDC = "acdc"
    EAP = "eap"
    EAP_IG = "eap-ig"

    @classmethod
    def parse(cls, value: object) -> Method:
        return parse(cls, value, "unknown method {value}; choose one of: {choices}")


class Distance(StrEnum):
    """What a discovery job's ACDC keeps small: KL to the full model, or the drop of the
    task's logit difference (`--metric`)."""

    KL = "kl"
    LOGIT_DIFF = "logit_diff"


class IgOver(StrEnum):
    """What EAP-IG integrates over: the inputs' embeddings, or every edge's activation."""

    INPUTS = "inputs"
    ACTIVATIONS = "activations"
