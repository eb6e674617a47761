"""`workbench patch`: a results table, JSON, a file, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import workbench
from circuits.cli import parse_bytes
from circuits.tasks import patch_task
from workbench.cli import cli
from workbench.errors import InputError
from workbench.tasks import make_task

runner = CliRunner()


def test_patch_json_matches_the_api_and_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["patch", "--model", "induction-2l", "--site", "resid_pre", "--n-prompts", "4"]
    result = runner.invoke(cli, [*args, "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert json.loads(out.read_text()) == printed
    ckpt = workbench.open_checkpoint("induction-2l")
    spec = ckpt.meta["task"]
    api = patch_task(
        ckpt.model, make_task(spec["name"], **spec["params"]), "resid_pre", n_prompts=4
    )
    assert printed["dims"] == ["layer", "pos"] and printed["shape"] == list(api.shape)
    scores = torch.tensor([row["logit_diff"] for row in printed["results"]])
    torch.testing.assert_close(scores, api.scores, atol=1e-5, rtol=1e-5)
    # the trained induction model prefers the clean answer on clean prompts only
    assert printed["source_baseline"] > 5 > printed["target_baseline"]


def test_patch_table_and_head_sites() -> None:
    args = ["patch", "--model", "induction-2l", "--site", "z", "--positions", "all"]
    result = runner.invoke(
        cli, [*args, "--n-prompts", "4", "--ablation", "mean"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "mean z: logit_diff" in result.output and "head" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--site", "resid"], "unknown patch site 'resid'"),
        (["--site", "z", "--positions", "some"], "--positions must be 'each' or 'all'"),
        (["--site", "z", "--memory-budget", "10"], "too small for one patch configuration"),
        (["--site", "z", "--task", "sort"], "pick the task the model was trained on"),
        (["--site", "z", "--ablation", "noise"], "unknown ablation 'noise'"),
        (["--site", "z", "--metric", "acc"], "unknown metric 'acc'"),
        (["--site", "z", "--n-prompts", "0"], "--n-prompts must be at least 1, got 0"),
        (["--site", "z", "--n-prompts", "-3"], "--n-prompts must be at least 1, got -3"),
        (["--site", "z", "--seed", "-1"], "--seed must be an integer in [0, 4294967295], got -1"),
        (["--site", "z", "--memory-budget", "0"], "--memory-budget must be at least 1 byte"),
        (["--site", "z", "--memory-budget", "0.2"], "--memory-budget must be at least 1 byte"),
        (["--site", "z", "--memory-budget", "-5MB"], "cannot read memory budget '-5MB'"),
        (["--site", "z", "--memory-budget", "nan"], "cannot read memory budget 'nan'"),
        (["--site", "z", "--memory-budget", "inf"], "cannot read memory budget 'inf'"),
        (["--site", "z", "--device", "tpu"], "unknown device 'tpu'"),
        (["--site", "z", "--clean", "BOS t1"], "type both --clean and --corrupted"),
        (["--site", "z", "--answer", "t1"], "--answer go with typed --clean and --corrupted"),
        (
            ["--site", "z", "--clean", "BOS t1", "--corrupted", "BOS t2", "--task", "induction"],
            "--task draws prompt pairs; typed --clean and --corrupted replace them",
        ),
        (
            ["--site", "z", "--clean", "BOS t1 banana", "--corrupted", "BOS t1 t2"],
            "--clean: 'banana' is not in this model's vocabulary",
        ),
        (
            ["--site", "z", "--clean", "BOS t1 t2", "--corrupted", "BOS t2"],
            "the clean prompt has 3 tokens and the corrupted one 2",
        ),
        (
            ["--site", "z", "--clean", "BOS t1", "--corrupted", "BOS t2", "--answer", "t1 t2"],
            "--answer must be one token, got 2",
        ),
        (
            ["--site", "z", "--clean", "BOS t1", "--corrupted", "BOS t2", "--ablation", "mean"],
            "one typed pair has none: choose patch or zero",
        ),
    ],
)
def test_patch_errors_are_clear(extra, message) -> None:
    result = runner.invoke(cli, ["patch", "--model", "induction-2l", "--n-prompts", "2", *extra])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert message in result.output


def test_memory_budgets_parse() -> None:
    assert parse_bytes("512MB") == 512 * 10**6
    assert parse_bytes("1GiB") == 2**30
    assert parse_bytes("1000") == 1000
    with pytest.raises(InputError, match="cannot read memory budget"):
        parse_bytes("lots")


def test_patch_output_paths_are_checked_before_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import circuits.tasks

    def never(*args, **kwargs):
        raise AssertionError("the sweep ran before the output path was checked")

    monkeypatch.setattr(circuits.tasks, "patch_task", never)
    (tmp_path / "file").write_text("keep")
    base = ["patch", "--model", "induction-2l", "--site", "resid_pre", "--n-prompts", "2"]
    for out, message in ((tmp_path, "is a directory"), (tmp_path / "file" / "x", "is a file")):
        for option in ("-o", "--html"):
            result = runner.invoke(cli, [*base, option, str(out)])
            assert result.exit_code == 2 and message in result.output, result.output
    assert (tmp_path / "file").read_text() == "keep"
