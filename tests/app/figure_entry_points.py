"""The `workbench.figures` entry points as pyproject.toml declares them, for tests of `--html`
that run before the package is reinstalled (`importlib.metadata` reads the installed ones)."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import workbench.html

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def declared() -> list[EntryPoint]:
    table = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][workbench.html.GROUP]
    return [EntryPoint(name, value, workbench.html.GROUP) for name, value in table.items()]


def use_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbench.html, "entry_points", lambda group: declared())
