"""What a dashboard's pages share: the offered models (and what later pages add)."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import ModelRegistry


@dataclass(frozen=True)
class AppContext:
    """The models a server offers."""

    registry: ModelRegistry
