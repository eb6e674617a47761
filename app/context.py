"""What a dashboard's pages share: the offered models, the job store and the worker processes
that write to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.models import ModelRegistry
from app.workers import Workers


@dataclass(frozen=True)
class AppContext:
    """The models a server offers; the job store its circuits page reads (never from the
    browser), and the workers it started (each runs `workbench discover` on that store)."""

    registry: ModelRegistry
    store: Path
    workers: Workers
