"""The CLI's listing commands and plugin registration."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from workbench.cli import cli
from workbench.presets import get_preset
from workbench.schema import hook_schema

runner = CliRunner()


def test_variants_json_lists_at_least_15_presets_with_papers() -> None:
    result = runner.invoke(cli, ["variants", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) >= 15
    assert all(r["name"] and r["description"] and r["paper"] for r in rows)
    assert not any(r["tiny_of"] for r in rows)
    with_tiny = json.loads(runner.invoke(cli, ["variants", "--json", "--tiny"]).output)
    assert len(with_tiny) == 2 * len(rows)


def test_variants_table_shows_names_and_papers() -> None:
    result = runner.invoke(cli, ["variants"], terminal_width=200)
    assert result.exit_code == 0
    assert "llama2-70b" in result.output and "Vaswani" in result.output


def test_hooks_command_prints_the_schema() -> None:
    result = runner.invoke(cli, ["hooks", "llama2-70b", "--json"])
    rows = json.loads(result.output)
    assert rows == [s.to_json() for s in hook_schema(get_preset("llama2-70b").config)]
    k = next(r for r in rows if r["name"] == "blocks.0.attn.hook_k")
    assert k["dims"] == ["batch", "pos", "kv_head", "d_head"] and k["shape"][2] == 8
    bad = runner.invoke(cli, ["hooks", "lama2-70b"])
    assert bad.exit_code == 2 and "'llama2-70b'" in bad.output


def test_tasks_command_lists_every_task() -> None:
    rows = json.loads(runner.invoke(cli, ["tasks", "--json"]).output)
    assert {r["name"] for r in rows} == {
        "induction",
        "copy",
        "reverse",
        "sort",
        "histogram",
        "modadd",
        "bars",
        "mlm",
        "forecast",
        "addition",
        "dyck",
        "ioi",
    }


def test_app_command_is_registered_by_the_app_package() -> None:
    result = runner.invoke(cli, ["app", "--help"])
    assert result.exit_code == 0 and "--model" in result.output
    bad = runner.invoke(cli, ["app", "--model", "no-such-model"])
    assert bad.exit_code == 2 and "unknown built-in model 'no-such-model'" in bad.output


def test_user_text_is_never_read_as_markup(tmp_path) -> None:
    crashed = runner.invoke(cli, ["hooks", "[/x]"])
    assert crashed.exit_code == 2 and "unknown preset '[/x]'" in crashed.output
    mangled = runner.invoke(cli, ["hooks", "[bold]gpt2-small"])
    assert mangled.exit_code == 2 and "'[bold]gpt2-small'" in mangled.output
    out = tmp_path / "[red]x[/red]"
    trained = runner.invoke(
        cli,
        ["train", "--preset", "attn-only-1l-tiny", "--task", "modadd", "--task-param", "p=5",
         "--steps", "1", "--device", "cpu", "-o", str(out)],
    )  # fmt: skip
    assert trained.exit_code == 0 and f"wrote {out}" in trained.output


def test_devices_ports_and_threads_are_checked_before_any_work(tmp_path) -> None:
    import torch

    args = ["train", "--preset", "gelu-2l-tiny", "--task", "copy", "-o", str(tmp_path / "r")]
    tpu = runner.invoke(cli, [*args, "--device", "tpu"])
    assert tpu.exit_code == 2 and "unknown device 'tpu'" in tpu.output
    if not torch.cuda.is_available():
        cuda = runner.invoke(cli, [*args, "--device", "cuda"])
        assert cuda.exit_code == 2 and "CUDA is not available" in cuda.output
    for option, value in (("--threads", "-1"), ("--batch-size", "-3"), ("--steps", "0")):
        bad = runner.invoke(cli, [*args, option, value])
        assert bad.exit_code == 2 and option in bad.output, bad.output
    assert not (tmp_path / "r").exists()
    port = runner.invoke(cli, ["app", "--port", "-1"])
    assert port.exit_code == 2 and "--port" in port.output


def test_threads_default_leaves_cpus_free() -> None:
    import os

    import torch

    from workbench.devices import default_threads, use_threads

    before = torch.get_num_threads()
    try:
        assert use_threads(0) == default_threads() <= max(1, len(os.sched_getaffinity(0)) // 2)
        assert use_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_ctrl_c_ends_a_command_with_130_and_what_was_kept(tmp_path, monkeypatch) -> None:
    from workbench import training

    def interrupted(*args, **kwargs):
        raise training.TrainingInterrupted(tmp_path / "r", 7)

    monkeypatch.setattr(training, "train", interrupted)
    args = ["train", "--preset", "gelu-2l-tiny", "--task", "copy", "-o", str(tmp_path / "r")]
    result = runner.invoke(cli, [*args, "--device", "cpu"])
    assert result.exit_code == 130
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert "after step 7" in result.output and "run the same command" in result.output
