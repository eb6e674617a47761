"""`workbench jobs list | show | export` and `workbench discover` against store paths that are
not job stores (nothing touched, nothing created), and how `jobs list` shows jobs: whole
ids at 80 columns, live and interrupted jobs, user text never read as markup."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuits import jobs
from workbench.cli import cli
from workbench.store import JobStore

runner = CliRunner()
EAP = ["--model", "induction-2l", "--method", "eap", "--top-k", "3", "--n-prompts", "2"]


def commands(store: Path) -> list[list[str]]:
    """Every command that opens the store, on a job id it might hold."""
    return [
        ["jobs", "list", "--store", str(store)],
        ["jobs", "list", "--json", "--store", str(store)],
        ["jobs", "show", "some-id", "--store", str(store)],
        ["jobs", "export", "some-id", "--store", str(store)],
        ["discover", "--resume", "some-id", "--store", str(store)],
        ["discover", *EAP, "--store", str(store)],
    ]


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def not_a_store(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "store"
    if kind == "random bytes":
        path.write_bytes(os.urandom(8192))
    elif kind == "text":
        path.write_text("id,status\n1,done\n" * 100)
    elif kind == "directory":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    else:  # another program's SQLite database
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
        db.commit()
        db.close()
    return path


@pytest.mark.parametrize("kind", ["random bytes", "text", "directory", "other sqlite"])
def test_a_path_that_is_not_a_job_store_is_a_clear_error_and_left_untouched(
    tmp_path: Path, kind: str
) -> None:
    path = not_a_store(tmp_path, kind)
    before = snapshot(tmp_path)
    expected = "is a directory" if kind == "directory" else "not a job store"
    for args in commands(path):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, result.output)
        assert snapshot(tmp_path) == before, args  # same bytes, no new file


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    store = tmp_path / "new" / "dir" / "jobs.sqlite"
    for args in commands(store)[:5]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and "no job store at" in result.output, args
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(cli, ["discover", *EAP, "--store", str(store)])  # discover may
    assert result.exit_code == 0, result.output
    assert [j.status for j in JobStore(store, readonly=True).list()] == ["done"]


def test_jobs_list_shows_whole_ids_at_80_columns_and_live_or_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    settings = vars(jobs.Settings("checkpoints/" + "very-long-model-name/" * 4, "eap", top_k=3))
    live = JobStore(store)
    running = live.create(jobs.KIND, settings, {})
    dead = JobStore(store, lease=1.0, clock=lambda: 0.0)  # its lease ended long ago
    interrupted = dead.create(jobs.KIND, settings, {})
    finished = live.create(jobs.KIND, settings, {})
    live.finish(finished, {"edges": []})
    result = runner.invoke(cli, ["jobs", "list", "--store", str(store)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80
    status = {}
    for job_id in (running, interrupted, finished):
        (row,) = [line for line in lines if job_id in line]  # the whole id, on one line
        status[job_id] = row.split()[3]
    assert status == {running: "running", interrupted: "interrupted", finished: "done"}
    assert "resume with workbench discover --resume ID" in " ".join(result.output.split())
    listed = json.loads(
        runner.invoke(cli, ["jobs", "list", "--json", "--store", str(store)]).stdout
    )
    assert {j["id"]: j["status"] for j in listed} == status


def test_user_text_is_printed_as_it_is(tmp_path: Path) -> None:
    """A model path or store path with square brackets is not rich markup."""
    store = tmp_path / "[bold]runs[/bold]" / "jobs.sqlite"
    model = "[red]model[/red]"
    JobStore(store).create(jobs.KIND, vars(jobs.Settings(model, "eap", top_k=3)), {})
    result = runner.invoke(cli, ["jobs", "list", "--store", str(store)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and model in result.output, result.output
    result = runner.invoke(cli, ["discover", *EAP, "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert f"in {store}" in result.output  # the note on stderr names the store as given
