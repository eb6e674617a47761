"""`workbench compile` and `workbench rasp run`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import workbench
from rasp import library as L
from rasp import rasp
from rasp.analysis import requirements
from tests.rasp.cases import chain_program
from workbench.cli import cli

runner = CliRunner()


def test_compile_writes_a_model_that_loads_like_any_other(tmp_path) -> None:
    out = tmp_path / "rev"
    result = runner.invoke(
        cli,
        ["compile", "rasp/programs/reverse.rasp", "--vocab", "a,b,c", "--max-len", "4",
         "-o", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["layers"] == 4 and summary["ground_truth_edges"] > 0
    model = workbench.load(out)
    assert model.config.d_model == summary["d_model"]


def test_compile_from_a_module_attribute_causal(tmp_path) -> None:
    result = runner.invoke(
        cli,
        ["compile", "rasp.library:make_length", "--vocab", "1,2", "--max-len", "3", "--causal",
         "-o", str(tmp_path / "len")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert workbench.load(tmp_path / "len").config.mask.value == "causal"


def test_rasp_run_prints_the_output_and_the_requirements() -> None:
    result = runner.invoke(
        cli, ["rasp", "run", "rasp/programs/sort.rasp", "--input", "cab", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["output"] == ["a", "b", "c"]
    assert report["requirements"]["layers"] >= 2


def test_bad_programs_and_inputs_fail_clearly(tmp_path) -> None:
    missing = runner.invoke(cli, ["rasp", "run", "nope.rasp", "--input", "a"])
    assert missing.exit_code == 2 and "no RASP file" in missing.output
    bad = tmp_path / "bad.rasp"
    bad.write_text("x = select(tokens, tokens, ==)\n")
    syntax = runner.invoke(cli, ["rasp", "run", str(bad), "--input", "a"])
    assert syntax.exit_code == 2 and "line" in syntax.output
    neither = runner.invoke(cli, ["rasp", "run", "reverse", "--input", "a"])
    assert neither.exit_code == 2 and "module:attr" in neither.output
    defaulted = tmp_path / "defaulted.rasp"
    defaulted.write_text('x = aggregate(select(tokens, tokens, <), tokens, "none");\n')
    unsupported = runner.invoke(
        cli, ["compile", str(defaulted), "--vocab", "a,b", "--max-len", "3",
              "-o", str(tmp_path / "s")]
    )  # fmt: skip
    assert unsupported.exit_code == 2 and "default='none'" in unsupported.output


def test_requirements_count_layers_and_heads() -> None:
    needs = requirements(L.make_reverse(rasp.tokens))
    assert needs.layers == 4 and needs.heads[0] == ("length",) and needs.heads[3] == ("reverse",)
    assert requirements(L.make_pair_balance(rasp.tokens, "(", ")")).max_heads == 2


def test_every_program_of_the_paper_runs_from_the_cli() -> None:
    from pathlib import Path

    for path in sorted(Path("rasp/programs").glob("*.rasp")):
        alphabet = "(){}" if "dyck" in path.name else "abca"
        result = runner.invoke(cli, ["rasp", "run", str(path), "--input", alphabet, "--json"])
        assert result.exit_code == 0, (path, result.output)
        assert len(json.loads(result.output)["output"]) == 4


def test_rasp_run_takes_a_program_of_3000_statements(tmp_path) -> None:
    path = tmp_path / "long.rasp"
    path.write_text(chain_program(3000))
    result = runner.invoke(cli, ["rasp", "run", str(path), "--input", "abcd", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["output"] == [749, 750, 751, 752]
    # a layer per statement: a conditional takes two MLPs, the first in the block of the
    # aggregate before it
    assert report["requirements"]["layers"] == 3000
