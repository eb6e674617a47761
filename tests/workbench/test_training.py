"""Training: loss goes down, runs are reproducible, interrupted runs resume exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import workbench
from workbench import checkpoint, files, resume
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
    assert (tmp_path / "resumed" / "resume" / "state.safetensors").is_file()
    assert not (tmp_path / "resumed" / "workbench.json").exists()
    resumed = train(preset, task, SETTINGS, tmp_path / "resumed", progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.metrics["history"] == straight.metrics["history"]
    assert not (tmp_path / "resumed" / "resume").exists()


KILL_SETTINGS = TrainSettings(
    steps=30, batch_size=16, lr=3e-3, eval_every=10, eval_size=32, checkpoint_every=10
)


class _Killed(BaseException):
    """The process dies here: the test also turns off the clean-up a dead process never runs."""


# where a kill cuts the run: the step-20 resume point's save_file (0; 1: half written),
# fsync of the staged file (2), rename (3), fsync of the directory (4), just after that save
# (5); the final save after its weights are in place (6), in the middle of its weights (7)
KILL_POINTS = range(8)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_point_of_a_save_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: int
) -> None:
    straight = train("gelu-2l-tiny", "copy", KILL_SETTINGS, progress=False)
    seen = {"ops": 0, "saves": 0}
    real = {
        "save_file": resume.save_file,
        "fsync": files._fsync,
        "replace": os.replace,
        "final": checkpoint.save_file,
        "write_file": checkpoint.write_file,
    }

    def half_written(path) -> None:
        Path(path).write_bytes(Path(path).read_bytes()[:1000])
        raise _Killed

    def op(name):
        def wrapped(*args, **kwargs):
            if name == "final" and point == 7:
                real[name](*args, **kwargs)
                half_written(args[1])
            if name == "write_file" and point == 6 and args[0].name == "workbench.json":
                raise _Killed
            seen["saves"] += name == "save_file"
            if seen["saves"] == 2 and name in ("save_file", "fsync", "replace"):  # step 20
                if seen["ops"] == {0: 0, 1: 0, 2: 1, 3: 2, 4: 3}.get(point):
                    if point == 1:
                        real[name](*args, **kwargs)
                        half_written(args[1])
                    raise _Killed
                seen["ops"] += 1
            return real[name](*args, **kwargs)

        return wrapped

    monkeypatch.setattr(resume, "save_file", op("save_file"))
    monkeypatch.setattr(files, "_fsync", op("fsync"))
    monkeypatch.setattr(files.os, "replace", op("replace"))
    monkeypatch.setattr(checkpoint, "save_file", op("final"))
    monkeypatch.setattr(checkpoint, "write_file", op("write_file"))
    monkeypatch.setattr(files, "_remove", lambda path: None)
    if point == 5:  # killed right after the save: at the next training batch
        with pytest.raises(_Crash):
            train("gelu-2l-tiny", _CrashingCopy(crash_at=21), KILL_SETTINGS, tmp_path / "r",
                  progress=False)  # fmt: skip
    else:
        with pytest.raises(_Killed):
            train("gelu-2l-tiny", "copy", KILL_SETTINGS, tmp_path / "r", progress=False)
    monkeypatch.undo()
    assert not (tmp_path / "r" / "workbench.json").exists()  # not finished: resumed below
    resumed = train("gelu-2l-tiny", "copy", KILL_SETTINGS, tmp_path / "r", progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.metrics["history"] == straight.metrics["history"]
    assert torch.equal(workbench.load(tmp_path / "r").W_E, straight.model.W_E)
    assert sorted(p.name for p in (tmp_path / "r").iterdir())[-2:] == [
        "model.safetensors",
        "workbench.json",
    ]


class _InterruptedCopy(CopyTask):
    """Ctrl-C while training step `at` runs."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def sample(self, n, gen, split="train"):
        if split == "train":
            self.calls += 1
            if self.calls == self.at:
                signal.raise_signal(signal.SIGINT)
        return super().sample(n, gen, split)


def test_ctrl_c_saves_a_resume_point_after_the_step_in_flight(tmp_path: Path) -> None:
    straight = train("gelu-2l-tiny", "copy", KILL_SETTINGS, progress=False)
    with pytest.raises(KeyboardInterrupt, match="after step 13.*run the same command"):
        train("gelu-2l-tiny", _InterruptedCopy(13), KILL_SETTINGS, tmp_path / "r", progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with safe_open(str(tmp_path / "r" / "resume" / "state.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "13"
    resumed = train("gelu-2l-tiny", "copy", KILL_SETTINGS, tmp_path / "r", progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # during the last step: the run finishes and writes its model
    last = train(
        "gelu-2l-tiny", _InterruptedCopy(30), KILL_SETTINGS, tmp_path / "l", progress=False
    )
    assert torch.equal(workbench.load(tmp_path / "l").W_E, straight.model.W_E)
    assert torch.equal(last.model.W_E, straight.model.W_E)


def test_a_damaged_resume_point_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(_Crash):
        train("gelu-2l-tiny", _CrashingCopy(crash_at=25), SETTINGS, tmp_path / "r", progress=False)
    state = tmp_path / "r" / "resume" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:500])
    with pytest.raises(workbench.errors.CheckpointError, match="delete .*resume"):
        train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "r", progress=False)
    (tmp_path / "r" / "resume" / "state.json").write_text("{}")  # the old two-file format
    state.unlink()
    save_file({"x": torch.zeros(1)}, str(state))
    with pytest.raises(workbench.errors.CheckpointError, match="not a resume point"):
        train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "r", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": -3}, "batch_size=-3 is out of range"),
        ({"checkpoint_every": 0}, "checkpoint_every=0 is out of range"),
        ({"lr": float("nan")}, "lr=nan is out of range"),
        ({"eval_every": 0}, "eval_every=0"),
        ({"steps": 0}, "steps=0"),
    ],
)
def test_training_settings_out_of_range_are_refused(change: dict, message: str) -> None:
    with pytest.raises(workbench.errors.InputError, match=message):
        TrainSettings(**{**SETTINGS.__dict__, **change})


def test_full_batch_needs_a_task_with_a_fixed_split(tmp_path: Path) -> None:
    settings = TrainSettings(**{**SETTINGS.__dict__, "batch_size": 0})
    with pytest.raises(workbench.errors.InputError, match="no fixed split; pass batch_size >= 1"):
        train("gelu-2l-tiny", "copy", settings, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    small = TrainSettings(steps=2, batch_size=0, eval_every=2, eval_size=0)
    result = train("attn-only-1l-tiny", make_task("modadd", p=5), small, progress=False)
    assert np.isfinite(result.metrics["loss"])


def test_overrides_too_small_for_the_task_and_bad_outputs_are_refused(tmp_path: Path) -> None:
    for name, value in (("d_vocab", 5), ("n_ctx", 4)):
        with pytest.raises(workbench.errors.InputError, match=f"{name}={value} is too small"):
            train("gelu-2l-tiny", "copy", SETTINGS, overrides={name: value}, progress=False)
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(workbench.errors.InputError, match="is a file"):
            train("gelu-2l-tiny", "copy", SETTINGS, out, progress=False)
    assert (tmp_path / "file").read_text() == "x"


def test_force_starts_over_and_deletes_only_a_run(tmp_path: Path) -> None:
    first = train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "r", progress=False)
    other = TrainSettings(**{**SETTINGS.__dict__, "seed": 1})
    again = train("gelu-2l-tiny", "copy", other, tmp_path / "r", progress=False, force=True)
    assert not torch.equal(first.model.W_E, again.model.W_E)
    assert torch.equal(workbench.load(tmp_path / "r").W_E, again.model.W_E)
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(workbench.errors.InputError, match=r"holds other files \(notes.txt\)"):
        train("gelu-2l-tiny", "copy", SETTINGS, tmp_path / "r", progress=False, force=True)
    assert (tmp_path / "r" / "workbench.json").is_file()  # nothing deleted


def test_training_never_writes_into_a_directory_of_other_things(tmp_path: Path) -> None:
    other = tmp_path / "hf"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"someone else's weights")
    for force in (False, True):
        with pytest.raises(workbench.errors.InputError, match=r"holds other files \(config.json\)"):
            train("gelu-2l-tiny", "copy", SETTINGS, other, progress=False, force=force)
    assert (other / "model.safetensors").read_bytes() == b"someone else's weights"
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "model.safetensors"]


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
    assert result.model.config.pos.digits == tuple(range(5, 15))
