"""`workbench learn-program` and `workbench decompile` end to end, and their bad inputs."""

from __future__ import annotations

import types
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import workbench
from rasp.learned import tasks
from workbench.cli import cli

runner = CliRunner()
TINY = ["--layers", "1", "--cat-heads", "1", "--num-heads", "1", "--cat-mlps", "1"]
TINY += ["--num-mlps", "1", "--epochs", "2", "--size", "300", "--batch-size", "128"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learned") / "hist"
    result = runner.invoke(cli, ["learn-program", "--task", "hist", *TINY, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output
    return out


def test_decompile_checks_freezes_and_compiles(run_dir: Path, tmp_path: Path) -> None:
    frozen_dir, compiled_dir = tmp_path / "frozen", tmp_path / "compiled"
    args = ["--check", "--freeze", str(frozen_dir), "--compile", str(compiled_dir)]
    result = runner.invoke(cli, ["decompile", str(run_dir), *args])
    assert result.exit_code == 0, result.output
    assert "attn_0_0 = aggregate(select_closest(" in result.output
    assert "num_attn_0_0 = aggregate_sum(select(" in result.output
    for split in ("train", "val", "test"):
        assert f"# {split}: accuracy" in result.output
    exact = (
        "differs from the model on 0, the frozen model on 0, the RASP program on 0, the "
        "compiled RASP model on 0"
    )
    assert result.output.count(exact) == 3
    frozen = workbench.load(frozen_dir)
    assert frozen.config.attention.KIND == "closest_match"
    compiled = workbench.load(compiled_dir)
    assert compiled.config.attention.KIND == "softmax"


def test_decompile_to_rasp_prints_a_program_that_builds(run_dir: Path) -> None:
    result = runner.invoke(cli, ["decompile", str(run_dir), "--rasp"])
    assert result.exit_code == 0, result.output
    namespace: dict[str, object] = {}
    exec(compile(result.output, "decompiled.py", "exec"), namespace)  # our own output
    from rasp import rasp
    from rasp.learned.train import load

    data = tasks.load("hist", size=300, seed=0)
    model, _ = load(run_dir)
    for row in data.test.inputs[:20]:
        words = [data.words[i] for i in row if i]
        expected = model.predict(torch.as_tensor(row[None, : len(words)]))[0].tolist()
        got = rasp.evaluate(namespace["program"], words, causal=namespace["CAUSAL"])
        assert got == [data.tags[i] for i in expected]


def test_decompile_to_python_runs_as_the_model_predicts(run_dir: Path) -> None:
    result = runner.invoke(cli, ["decompile", str(run_dir), "--python"])
    assert result.exit_code == 0, result.output
    module = types.ModuleType("decompiled")
    exec(compile(result.output, "decompiled.py", "exec"), module.__dict__)  # our own output
    data = tasks.load("hist", size=300, seed=0)
    from rasp.learned.train import load

    model, _ = load(run_dir)
    for row in data.test.inputs[:20]:
        words = [data.words[i] for i in row if i]
        expected = model.predict(torch.as_tensor(row[None, : len(words)]))[0].tolist()
        assert module.run(words) == [data.tags[i] for i in expected]


def test_table1_shape_trains_at_the_tasks_table_1_shape(tmp_path: Path) -> None:
    out = tmp_path / "hist"
    args = ["--table1-shape", "--epochs", "1", "--size", "300", "--batch-size", "128"]
    result = runner.invoke(cli, ["learn-program", "--task", "hist", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    from rasp.learned.train import load

    model, meta = load(out)
    shape = meta["settings"]
    assert {k: shape[k] for k in tasks.TABLE_1_SHAPES["hist"]} == tasks.TABLE_1_SHAPES["hist"]
    assert (model.shape.n_layers, model.shape.cat_heads, model.shape.num_mlps) == (1, 2, 1)


def test_compile_flags_choose_the_compiled_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--compile trains through torch.compile (here a backend that cannot compile: the
    warning shows it was tried), as the default does for a run long enough; --no-compile
    does not."""
    from rasp.learned import train

    def failing_backend(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(train, "COMPILE_BACKEND", failing_backend)
    monkeypatch.setattr(train, "COMPILE_FROM_STEPS", 1)  # the default compiles this run
    outputs = {}
    for flags in (["--compile"], ["--no-compile"], []):
        out = tmp_path / (flags[0] if flags else "default")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = runner.invoke(cli, ["learn-program", "--task", "hist", *TINY, *flags,
                                         "-o", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[tuple(flags)] = [
            str(w.message) for w in caught if "torch.compile" in str(w.message)
        ]
    assert "could not compile the training step" in outputs[("--compile",)][0]
    assert "could not compile the training step" in outputs[()][0]
    assert outputs[("--no-compile",)] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["learn-program", "--task", "sorting", "-o", "OUT"], "unknown task 'sorting'"),
        (["learn-program", "--task", "hist", "--lr", "0", "-o", "OUT"], "lr must be"),
        (
            ["learn-program", "--task", "hist", "--table1-shape", "--layers", "2", "-o", "OUT"],
            "--table1-shape sets the layers, heads and MLPs itself; drop --layers",
        ),
        (["learn-program", "--task", "sorting", "--table1-shape", "-o", "OUT"], "unknown task"),
        (["decompile", "OUT"], "holds no finished learned program"),
        (["decompile", "OUT", "--rasp", "--python"], "pass one of --python and --rasp"),
        (["decompile", "OUT", "--freeze", "X", "--compile", "X"], "name the same directory"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
