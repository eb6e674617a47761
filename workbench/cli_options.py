"""Options shared by the commands of every package (`--threads`, `--device`), in a module
without side effects so that plugin command modules can import it at their top."""

from __future__ import annotations

from typing import Annotated, TypedDict

import typer

ThreadsOption = Annotated[
    int, typer.Option(min=0, help="CPU threads for torch; 0 = half the CPUs (at most 8).")
]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto (cuda if present).")]


class Range(TypedDict):
    """Bounds that unpack into `typer.Option(**range)` as its `min` and `max`."""

    min: int
    max: int


SEED_RANGE = Range(min=0, max=2**32 - 1)  # what every generator (torch, numpy) accepts
