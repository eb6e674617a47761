"""Slow: the README's commands reproduce the shipped models' claims from scratch."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import workbench
from probes.heads import head_scores
from workbench.cli import cli
from workbench.tasks import make_task

README = Path(__file__).parents[2] / "README.md"
pytestmark = pytest.mark.slow


def readme_command(name: str) -> list[str]:
    row = next(line for line in README.read_text().splitlines() if line.startswith(f"| `{name}`"))
    command = re.findall(r"`(workbench train [^`]+)`", row)[0]
    return shlex.split(command)[1:]


def run(name: str, out: Path) -> workbench.checkpoint.Checkpoint:
    args = readme_command(name)
    args[args.index("-o") + 1] = str(out)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return workbench.open_checkpoint(out)


def test_readme_command_reproduces_the_induction_model(tmp_path: Path) -> None:
    ckpt = run("induction-2l", tmp_path / "ind")
    scores = head_scores(ckpt.model, half_len=12, n_sequences=128, seed=1)
    layer, _, score = scores.top_induction_head()
    assert score > 0.5 and layer == 1
    assert scores.previous_token[0].max() > 0.5


def test_readme_command_reproduces_the_modadd_model(tmp_path: Path) -> None:
    ckpt = run("modadd-1l", tmp_path / "mod")
    task = make_task("modadd", **ckpt.meta["task"]["params"])
    held_out = task.sample(0, torch.Generator(), "test")
    with torch.no_grad():
        assert task.accuracy(ckpt.model(held_out.tokens), held_out) > 0.95
