"""Every command of the CLI, driven with random and adversarial arguments (hypothesis): each
invocation ends with status 0, or status 2 and a message, never a Python traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from workbench.cli import cli

ROOT = get_command(cli)

ADVERSARIAL = [
    "", " ", "-1", "0", "1", "2", "-3", "nan", "inf", "-inf", "1e400", "0.5", "abc",
    "[/x]", "[bold]gpt2-small", "[red]", "%s", "{}", "../../etc/passwd", "/etc/passwd",
    "/dev/null", "x" * 300, "é☃", "a=b", "KEY", "d_model=0", "tied_embeddings=False",
    "n_layers=-1", "p=0", "p=abc", "true",
]  # fmt: skip
VALID = [
    "gelu-2l-tiny", "attn-only-1l-tiny", "induction-2l", "modadd-1l", "copy", "modadd",
    "induction", "resid_pre", "resid_post", "z", "pattern", "mlp_post", "acdc", "eap",
    "zero", "mean", "patch", "logit_diff", "kl", "all", "each", "cpu", "auto", "cuda", "tpu",
    "a,b,c", "1,2,3", "abc", "rasp.library:make_hist", "rasp.library:make_reverse",
    "rasp/programs/hist.rasp", "1GiB", "0GiB", "-5MiB", "logistic", "json", "csv",
]  # fmt: skip


def leaf_commands() -> list[tuple[list[str], object]]:
    found = []

    def walk(command: object, path: list[str]) -> None:
        if hasattr(command, "commands"):  # a group (typer ships its own click classes)
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found.append((path, command))

    walk(ROOT, [])
    return found


COMMANDS = leaf_commands()
# arguments that keep a run that gets past validation short
BOUNDS = {
    "train": ["--steps", "2", "--threads", "1"],
    "discover": ["--n-prompts", "2"],
    "neuron-path": ["--steps", "2", "--n-prompts", "1", "--n-random", "1"],
    "invert": ["--n-collision", "4", "--n-prompts", "1"],
    "decompose": ["--n-prompts", "4"],
    "probe": ["--n-prompts", "8"],
}


@st.composite
def invocation(draw, command: object, scratch: Path) -> list[str]:
    paths = [str(scratch / "file.txt"), str(scratch), str(scratch / "new" / "dir")]
    value = st.sampled_from(ADVERSARIAL + VALID + paths)
    args: list[str] = []
    for param in command.params:
        if param.name == "help" or not draw(st.booleans()):
            continue
        if param.param_type_name == "argument":
            args.append(draw(value))
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        else:
            args += [draw(st.sampled_from(param.opts)), draw(value)]
    if draw(st.integers(0, 9)) == 0:  # now and then a stray word or an unknown option
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(["--nope", "x"])))
    return args


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_command_ends_in_a_traceback(
    path: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dash

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(dash.Dash, "run", lambda self, *a, **k: None)  # never serve
    (tmp_path / "file.txt").write_text("not a checkpoint, a program or a store\n")
    command = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    runner = CliRunner()

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(invocation(command, tmp_path))
    def check(args: list[str]) -> None:
        argv = [*path, *args, *BOUNDS.get(path[-1], [])]
        result = runner.invoke(cli, argv)
        shown = f"workbench {' '.join(argv)}\n{result.output}"
        assert "Traceback" not in result.output, shown
        assert result.exit_code in (0, 2), f"{shown}\n{result.exception!r}"
        if result.exit_code == 2:
            assert "error" in result.output.lower() or "usage" in result.output.lower(), shown

    check()
