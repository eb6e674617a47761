"""Training: loss goes down, runs are reproducible, interrupted runs resume exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import workbench
from workbench.cli import cli
from workbench.tasks import make_task
from workbench.tasks.addition import AdditionTask
from workbench.tasks.sequence import CopyTask
from workbench.training import TrainSettings, train

SETTINGS = TrainSettings(
    steps=40, batch_size=32, lr=3e-3, eval_every=20, eval_size=64, checkpoint_every=20
)


def test_short_run_lowers_the_loss() -> None:
    result = train("gelu-2l-tiny", "copy", SETTINGS, progress=False)
    first, last = result.metrics["history"][0], result.metrics["history"][-1]
    untrained = workbench.build("gelu-2l-tiny", d_vocab=22, n_ctx=18)
    assert last["eval_loss"] < first["eval_loss"] < 3.2  # log(22) ~ 3.09 at chance
    assert untrained.config == result.model.config


def test_same_seed_same_result_and_load_is_bit_identical(tmp_path: Path) -> None:
    a = train("attn-only-1l-tiny", "copy", SETTINGS, tmp_path / "a", progress=False)
    b = train("attn-only-1l-tiny", "copy", SETTINGS, tmp_path / "b", progress=False)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb), ka
    tokens = make_task("copy").sample(8, torch.Generator().manual_seed(9)).tokens
    loaded = workbench.load(tmp_path / "a")
    assert torch.equal(loaded(tokens), a.model(tokens))
    meta = json.loads((tmp_path / "a" / "workbench.json").read_text())
    assert meta["task"] == {"name": "copy", "params": {"n_symbols": 20, "length": 8}}
    assert meta["seed"] == 0 and meta["vocab"][:3] == ["BOS", "SEP", "s0"]
    assert {"torch", "workbench", "python"} <= set(meta["versions"])
    assert meta["metrics"]["step"] == 40
    c = train(
        "attn-only-1l-tiny",
        "copy",
        TrainSettings(**{**SETTINGS.__dict__, "seed": 1}),
        progress=False,
    )
    assert not torch.equal(c.model.W_E, a.model.W_E)


class _Crash(Exception):
    pass


class _CrashOnBatch:
    """Mixed into a task: crash the run when it is asked for training batch `crash_at`."""

    calls, crash_at = 0, 0

    def sample(self, n, gen, split="train"):
        if split == "train":
            self.calls += 1
            if self.calls == self.crash_at:
                raise _Crash
        return super().sample(n, gen, split)


class _CrashingCopy(_CrashOnBatch, CopyTask):
    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at


class _CrashingAddition(_CrashOnBatch, AdditionTask):
    def __init__(self, crash_at: int) -> None:
        super().__init__(max_digits=3)
        self.crash_at = crash_at


# the abacus model draws its own random place offsets in training: resuming restores them too
@pytest.mark.parametrize(
    ("preset", "crashing"),
    [
        ("gelu-2l-tiny", _CrashingCopy),
        ("looped-4x-tiny", _CrashingCopy),
        ("abacus-small-tiny", _CrashingAddition),
    ],
)
def test_interrupted_run_resumes_to_the_same_weights(
    tmp_path: Path, preset: str, crashing: type
) -> None:
    task = AdditionTask(max_digits=3) if crashing is _CrashingAddition else CopyTask()
    straight = train(preset, task, SETTINGS, tmp_path / "straight", progress=False)
    with pytest.raises(_Crash):
        train(preset, crashing(crash_at=31), SETTINGS, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "resume" / "state.json").is_file()
    assert not (tmp_path / "resumed" / "workbench.json").exists()
    resumed = train(preset, task, SETTINGS, tmp_path / "resumed", progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.metrics["history"] == straight.metrics["history"]
    assert not (tmp_path / "resumed" / "resume").exists()


def test_resume_refuses_other_settings_and_finished_dirs(tmp_path: Path) -> None:
    with pytest.raises(_Crash):
        train("gelu-2l-tiny", _CrashingCopy(crash_at=25), SETTINGS, tmp_path / "r", progress=False)
    with pytest.raises(workbench.errors.CheckpointError, match="other settings"):
        train(
            "gelu-2l-tiny",
            "copy",
            TrainSettings(**{**SETTINGS.__dict__, "lr": 1e-2}),
            tmp_path / "r",
            progress=False,
        )
    train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "done", progress=False)
    with pytest.raises(workbench.errors.CheckpointError, match="already holds a finished model"):
        train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "done", progress=False)


def test_cli_train_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--preset",
            "attn-only-1l-tiny",
            "--task",
            "modadd",
            "--task-param",
            "p=7",
            "--steps",
            "5",
            "--seed",
            "3",
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    ckpt = workbench.open_checkpoint(out)
    assert ckpt.meta["task"]["params"]["p"] == 7 and ckpt.model.config.d_vocab == 8


def test_cli_train_bad_task_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["train", "--preset", "gelu-2l-tiny", "--task", "sortt", "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "unknown task 'sortt'" in result.output and "'sort'" in result.output
    assert not (tmp_path / "x").exists()


def test_two_processes_with_one_seed_write_identical_weights(tmp_path: Path) -> None:
    # in one process a run can look deterministic by luck; separate processes expose
    # thread-order accumulation (the embedding backward) if training does not pin it
    command = [
        sys.executable,
        "-m",
        "workbench.cli",
        "train",
        "--preset",
        "attn-only-2l",
        "--task",
        "induction",
        "--steps",
        "60",
        "--lr",
        "3e-3",
        "--device",
        "cpu",
    ]
    for name in ("a", "b"):
        subprocess.run([*command, "-o", str(tmp_path / name)], check=True, capture_output=True)
    weights = [(tmp_path / n / "model.safetensors").read_bytes() for n in ("a", "b")]
    assert weights[0] == weights[1]


def test_task_completes_an_overridden_architecture() -> None:
    # pos='abacus' needs digit ids; the addition task supplies them while the model is built
    settings = TrainSettings(steps=2, batch_size=4, eval_every=2, eval_size=8)
    result = train(
        "gelu-2l-tiny", "addition", settings, overrides={"pos": "abacus"}, progress=False
    )
    assert result.model.config.digit_tokens == tuple(range(5, 15))
