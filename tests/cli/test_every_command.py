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
INTEGERS = ["-3", "-1", "0", "1", "2", "3", "7", "2147483648", "-0"]
FLOATS = ["nan", "inf", "-inf", "-1", "0", "1e-12", "0.5", "1", "1e400"]
PROGRAMS = Path(__file__).parents[2] / "rasp" / "programs"


def base(command: str, scratch: Path) -> list[str]:
    """A valid, short invocation of `command`; examples mutate it, so they reach deep checks."""
    return {
        "hooks": ["gelu-2l-tiny"],
        "train": ["--preset", "attn-only-1l-tiny", "--task", "modadd", "--task-param", "p=5",
                  "-o", str(scratch / "trained"), "--steps", "2", "--threads", "1"],
        "convert": [str(scratch / "hf"), "-o", str(scratch / "converted"), "--force"],
        "app": ["--model", "induction-2l"],
        "discover": ["--model", "induction-2l", "--method", "eap", "--n-prompts", "2"],
        "patch": ["--model", "induction-2l", "--site", "resid_pre", "--n-prompts", "2"],
        "probe": ["--model", "induction-2l", "--n-prompts", "8", "--threads", "1"],
        "decompose": ["--model", "induction-2l", "--n-prompts", "4", "--threads", "1"],
        "invert": ["--model", "induction-2l", "--layer", "1", "--n-prompts", "1",
                   "--n-collision", "4", "--threads", "1"],
        "neuron-path": ["--model", "modadd-1l", "--n-prompts", "1", "--steps", "2",
                        "--n-random", "1", "--threads", "1"],
        "compile": ["rasp.library:make_hist", "--vocab", "a,b", "--max-len", "3",
                    "-o", str(scratch / "compiled")],
        "show": ["no-such-job"],
        "export": ["no-such-job"],
        "run": [str(PROGRAMS / "hist.rasp"), "--input", "abc"],
    }.get(command, [])  # fmt: skip


@st.composite
def invocation(draw, path: list[str], command: object, scratch: Path) -> list[str]:
    """A valid invocation with 1-3 parameters set to random or adversarial values."""
    paths = [str(scratch / "file.txt"), str(scratch), str(scratch / "new" / "dir")]
    anything = ADVERSARIAL + VALID + paths

    def value(param) -> st.SearchStrategy[str]:  # mostly of the parameter's type
        kind = getattr(getattr(param, "type", None), "name", "")
        typed = INTEGERS if "integer" in kind else FLOATS if "float" in kind else anything
        return st.sampled_from(typed if draw(st.integers(0, 4)) else anything)

    args = base(path[-1], scratch)
    params = [p for p in command.params if p.name != "help"]  # type: ignore[attr-defined]
    for _ in range(draw(st.integers(1, 3)) if params else 0):
        param = draw(st.sampled_from(params))
        if param.param_type_name == "argument":
            args = [draw(value(param)), *args[1:]]
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        else:  # the last occurrence of an option wins
            args += [draw(st.sampled_from(param.opts)), draw(value(param))]
    if draw(st.integers(0, 9)) == 0:  # now and then a stray word or an unknown option
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(["--nope", "x"])))
    return args


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_no_command_ends_in_a_traceback(
    path: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dash
    import waitress

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(dash.Dash, "run", lambda self, *a, **k: None)  # never serve
    monkeypatch.setattr(waitress, "serve", lambda *a, **k: None)
    (tmp_path / "file.txt").write_text("not a checkpoint, a program or a store\n")
    if path == ["convert"]:  # a real Hugging Face checkpoint to start from
        from tests.convert.hf_models import tiny_hf

        tiny_hf("gpt2").save_pretrained(tmp_path / "hf")
    command = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    runner = CliRunner()

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(invocation(path, command, tmp_path))
    def check(args: list[str]) -> None:
        argv = [*path, *args]
        result = runner.invoke(cli, argv)
        shown = f"workbench {' '.join(argv)}\n{result.output}"
        # an exception that escaped the command (a traceback) is kept here, not printed
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{shown}\n{result.exception!r}"
        )
        assert result.exit_code in (0, 2), shown
        if result.exit_code == 2:
            assert "error" in result.output.lower() or "usage" in result.output.lower(), shown

    check()
