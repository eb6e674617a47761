"""Generated documentation is up to date."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_variants_doc_is_up_to_date() -> None:
    render = runpy.run_path(str(ROOT / "scripts" / "variants_doc.py"))["render"]
    assert (ROOT / "docs" / "variants.md").read_text() == render(), (
        "docs/variants.md is stale: run .venv/bin/python scripts/variants_doc.py"
    )
