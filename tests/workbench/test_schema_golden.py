"""Golden hook schemas: the hook names and dims of every preset's tiny twin are pinned.

After an intended change, regenerate with: WORKBENCH_UPDATE_GOLDEN=1 pytest tests/workbench/test_schema_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import tiny_presets
from workbench.presets import get_preset
from workbench.schema import hook_schema

GOLDEN = Path(__file__).parents[1] / "golden" / "hooks"


@pytest.mark.parametrize("preset", tiny_presets())
def test_hook_schema_matches_golden(preset: str) -> None:
    got = [s.to_json() for s in hook_schema(get_preset(preset).config)]
    path = GOLDEN / f"{preset}.json"
    if os.environ.get("WORKBENCH_UPDATE_GOLDEN"):
        lines = ",\n".join(" " + json.dumps(entry) for entry in got)
        path.write_text("[\n" + lines + "\n]\n")
    assert path.is_file(), f"no golden file for {preset}; run with WORKBENCH_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text())


def test_every_golden_file_belongs_to_a_preset() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(tiny_presets())
