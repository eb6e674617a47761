"""Checkpoints on disk: atomic writes (staging, fsync, one rename), stale staging cleaned up,
consistent modes; reads confined to the directory, shapes checked before allocation, and
NaN/inf refused unless allowed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import workbench
from workbench import checkpoint, files
from workbench.checkpoint import load_checkpoint, save
from workbench.errors import CheckpointError

ROOT = Path(__file__).parents[2]


@pytest.fixture
def model() -> workbench.Transformer:
    return workbench.build("gpt2-small-tiny")


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_an_existing_checkpoint_is_refused_and_force_replaces_it(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    ck = tmp_path / "ck"
    save(model, ck)
    before = contents(ck)
    other = workbench.build("gpt2-small-tiny", seed=1)
    with pytest.raises(CheckpointError, match="already exists and is not empty; pass --force"):
        save(other, ck)
    assert contents(ck) == before
    save(other, ck, force=True)
    assert torch.equal(workbench.load(ck).W_E, other.W_E)
    assert hidden(tmp_path) == []


def test_force_replaces_without_an_atomic_swap_too(
    model: workbench.Transformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_renameat2", lambda a, b: False)  # a system without it
    ck = tmp_path / "ck"
    save(model, ck)
    (ck / "tokenizer.json").write_text("{}")  # the old checkpoint's: gone with it
    other = workbench.build("gpt2-small-tiny", seed=1)
    save(other, ck, force=True)
    assert sorted(p.name for p in ck.iterdir()) == ["model.safetensors", "workbench.json"]
    assert torch.equal(workbench.load(ck).W_E, other.W_E)
    assert hidden(tmp_path) == []


def test_a_failing_fill_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    def fill(staging: Path) -> None:
        (staging / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("killed in the middle")

    with pytest.raises(RuntimeError, match="killed"):
        files.write_dir(tmp_path / "new", fill)
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "workbench.json").write_text('{"config": "old"}')
    with pytest.raises(RuntimeError, match="killed"):
        files.write_dir(old, fill, force=True)
    assert contents(old) == {"workbench.json": b'{"config": "old"}'}
    assert hidden(tmp_path) == []


def test_a_killed_writer_leaves_the_target_and_its_staging_goes_next_run(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    ck = tmp_path / "ck"
    save(model, ck)
    before = contents(ck)
    script = (
        "import os, signal, sys\n"
        "from workbench import files\n"
        "def fill(staging):\n"
        "    (staging / 'model.safetensors').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "files.write_dir(sys.argv[1], fill, force=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(ck)], cwd=ROOT, check=False)
    assert run.returncode == -signal.SIGKILL
    assert contents(ck) == before
    [left] = hidden(tmp_path)
    assert left.startswith(".ck.staging-")
    save(model, tmp_path / "other")  # another name: its staging is not ours to remove
    assert hidden(tmp_path) == [left]
    save(model, ck, force=True)
    assert hidden(tmp_path) == []


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_staging_of_dead_processes_only_is_removed(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    ck = tmp_path / "ck"
    dead = files.temp_path(ck, pid=dead_pid())
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"partial")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            live = files.temp_path(ck, pid=alive.pid)
            live.mkdir()
            save(model, ck)
            assert not dead.exists()
            assert live.exists()  # its writer may still be working
        finally:
            alive.kill()
    assert sorted(p.name for p in ck.iterdir()) == ["model.safetensors", "workbench.json"]


def test_a_stale_staging_file_goes_when_the_file_is_written_again(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "resume").mkdir(parents=True)
    stale = files.temp_path(run / "model.safetensors", pid=dead_pid())
    stale.write_bytes(b"half a file")
    checkpoint.save_into(model, run)
    assert not stale.exists() and hidden(run) == []


def test_a_directory_set_aside_by_a_dead_replace_is_put_back(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    aside = files.temp_path(ck, files.ASIDE, pid=dead_pid())
    aside.mkdir()
    (aside / "workbench.json").write_text("{}")
    files.clean_stale(ck)
    assert (ck / "workbench.json").read_text() == "{}"
    assert hidden(tmp_path) == []


def test_every_file_and_directory_is_fsynced_before_the_rename(
    model: workbench.Transformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", record)
    save(model, tmp_path / "ck")
    staging = Path(synced[0]).parent
    assert staging.name.startswith(".ck.staging-")
    assert {Path(p).name for p in synced[:2]} == {"model.safetensors", "workbench.json"}
    assert synced[2:] == [str(staging), str(tmp_path)]  # the new directory, then its parent


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_modes_follow_the_umask(model: workbench.Transformer, tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        save(model, tmp_path / "ck")
    finally:
        os.umask(previous)
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o777 & ~umask
    for path in (tmp_path / "ck").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


def test_saving_into_a_run_directory_keeps_its_other_contents(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "resume").mkdir(parents=True)
    (run / "resume" / "state.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not empty; pass --force"):
        save(model, run)  # a whole-directory write never mixes with other contents
    with pytest.raises(CheckpointError, match=r"holds other files \(resume\)|holds no checkpoint"):
        save(model, run, force=True)  # and --force never deletes them
    (run / "model.safetensors").write_bytes(b"cut off before workbench.json was written")
    with pytest.raises(CheckpointError, match="already holds model.safetensors"):
        checkpoint.save_into(model, run)  # someone's weights are never replaced by default
    checkpoint.save_into(model, run, replace_partial=True)  # what workbench train does
    assert (run / "resume" / "state.json").read_text() == "{}"
    assert torch.equal(workbench.load(run).W_E, model.W_E)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        checkpoint.save_into(model, run)
    assert hidden(run) == []


def test_force_replaces_only_a_workbench_checkpoint(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    thesis = tmp_path / "thesis"
    (thesis / "data").mkdir(parents=True)
    (thesis / "workbench.json").write_text('{"some": "other tool"}')
    (thesis / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match=r"holds other files \(data, thesis.tex\)"):
        save(model, thesis, force=True)
    (thesis / "thesis.tex").unlink()
    (thesis / "data").rmdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        save(model, thesis, force=True)  # a workbench.json without a config is not ours
    assert (thesis / "workbench.json").read_text() == '{"some": "other tool"}'


def test_a_file_or_a_file_in_the_path_is_not_a_target(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="exists and is not a directory"):
        save(model, tmp_path / "file")
    with pytest.raises(CheckpointError, match="file is not a directory"):
        save(model, tmp_path / "file" / "ck")
    assert (tmp_path / "file").read_text() == "x"
    save(model, tmp_path / "new" / "parents" / "ck")  # missing parents are created
    (tmp_path / "empty").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path / "empty")
        for here in (".", "..", tmp_path / "empty"):
            with pytest.raises(CheckpointError, match="is the working directory or above it"):
                files.write_dir(here, lambda staging: None)
    assert (tmp_path / "new" / "parents" / "ck" / "workbench.json").is_file()


@pytest.mark.parametrize("name", ["model.safetensors", "workbench.json", "tokenizer.json"])
def test_files_linked_from_outside_the_directory_are_refused(
    model: workbench.Transformer, tmp_path: Path, name: str
) -> None:
    save(model, tmp_path / "outside")
    (tmp_path / "outside" / "tokenizer.json").write_text("{}")
    ck = tmp_path / "ck"
    save(model, ck)
    (ck / name).unlink(missing_ok=True)
    (ck / name).symlink_to(tmp_path / "outside" / name)
    with pytest.raises(CheckpointError, match=f"{name} leads to .*outside the checkpoint"):
        ckpt = workbench.open_checkpoint(ck)
        ckpt.tokenizer()


def test_a_symlink_inside_the_directory_is_allowed(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    ck = tmp_path / "ck"
    save(model, ck)
    (ck / "weights").mkdir()
    (ck / "model.safetensors").rename(ck / "weights" / "real.safetensors")
    (ck / "model.safetensors").symlink_to(Path("weights") / "real.safetensors")
    assert torch.equal(workbench.load(ck).W_E, model.W_E)


def test_nonfinite_weights_are_refused_unless_allowed_and_config_values_always(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    save(model, tmp_path / "clean")
    with torch.no_grad():
        model.W_E[3, 1] = float("nan")
        model.W_pos[0, 0] = float("inf")
    save(model, tmp_path / "broken")
    with pytest.raises(
        CheckpointError, match=r"NaN or infinite values in 'W_E' \(1 of 1600\), 'W_pos' \(1 of"
    ):
        workbench.load(tmp_path / "broken")
    assert workbench.load(tmp_path / "broken", allow_nonfinite=True).W_E[3, 1].isnan()
    meta_path = tmp_path / "clean" / "workbench.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["norm_eps"] = float("nan")
    meta_path.write_text(json.dumps(meta))  # Python's json writes and reads NaN
    for allow in (False, True):  # the opt-out is for weights: no model computes with NaN eps
        with pytest.raises(CheckpointError, match=r"norm_eps must be a finite number > 0, got nan"):
            workbench.load(tmp_path / "clean", allow_nonfinite=allow)


def test_a_config_claiming_huge_sizes_fails_before_allocating(
    model: workbench.Transformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = tmp_path / "ck"
    save(model, ck)
    meta = json.loads((ck / "workbench.json").read_text())
    built_on: list[str] = []
    real = checkpoint.Transformer

    def spy(config):  # the model is built on the meta device only
        built_on.append(torch.get_default_device().type)
        return real(config)

    def no_load(*args, **kwargs):
        raise AssertionError("tensors read before the shapes were checked")

    monkeypatch.setattr(checkpoint, "Transformer", spy)
    monkeypatch.setattr(checkpoint, "load_file", no_load)
    for huge, match in (
        ({"n_layers": 10**4}, r"n_layers=10000 needs tensors for 10000 blocks, the weights have 2"),
        ({"d_model": 10**6, "d_head": 250_000}, r"'W_E' has shape \(50, 32\), the config needs"),
    ):
        (ck / "workbench.json").write_text(json.dumps({**meta, "config": meta["config"] | huge}))
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(ck)
    assert set(built_on) <= {"meta"}


def test_meta_shapes_are_the_unique_state_dict_of_every_tiny_preset() -> None:
    """Differential: the meta-device shapes the loader checks against, and the real model's."""
    from tests.conftest import tiny_presets

    for name in tiny_presets():
        real = workbench.build(name)
        expected = checkpoint.expected_shapes(real.config)
        assert expected == {k: tuple(v.shape) for k, v in real.unique_state_dict().items()}, name


def test_an_unreadable_workbench_json_is_named(
    model: workbench.Transformer, tmp_path: Path
) -> None:
    ck = tmp_path / "ck"
    save(model, ck)
    (ck / "workbench.json").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(CheckpointError, match="not a valid workbench.json"):
        workbench.load(ck)
