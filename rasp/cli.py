"""`workbench compile` and `workbench rasp run`, registered through the `workbench.commands`
entry point so that the core CLI never imports the RASP package.

PROGRAM is a `.rasp` file (the paper's language) or `module:attr` naming a SOp, or a function
returning one (`rasp.library:make_hist`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rasp import rasp

rasp_cli = typer.Typer(help="Run RASP programs.", no_args_is_help=True)


def load_program(spec: str) -> rasp.SOp:
    """A program from a .rasp file or a `module:attr` (a SOp, or a function giving one)."""
    from rasp.parser import load

    if spec.endswith(".rasp"):
        if not Path(spec).is_file():
            raise FileNotFoundError(f"no RASP file {spec}")
        return load(spec).output
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(
            f"PROGRAM {spec!r} is neither a .rasp file nor module:attr (e.g. "
            "rasp.library:make_hist)"
        )
    try:
        value: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {spec}: {exc}") from None
    if callable(value) and not isinstance(value, rasp.RASPExpr):
        value = value()
    if not isinstance(value, rasp.SOp):
        raise ValueError(f"{spec} is a {type(value).__name__}, not a RASP SOp")
    return value


def tokens_of(text: str, vocab: list[str] | None = None) -> list[Any]:
    """'abc' -> ['a', 'b', 'c']; '1,2,3' -> [1, 2, 3] (comma-separated, numbers as ints)."""
    items = text.split(",") if "," in text else list(text)
    return [_value(item.strip()) for item in items]


def _value(item: str) -> Any:
    try:
        return int(item)
    except ValueError:
        return item


def register(cli: typer.Typer) -> None:
    from workbench.cli import console, fail

    errors = (ValueError, FileNotFoundError)

    @cli.command("compile")
    def compile_command(
        program: Annotated[str, typer.Argument(help="A .rasp file or module:attr.")],
        vocab: Annotated[str, typer.Option(help="Input tokens: a,b,c (numbers become ints).")],
        max_len: Annotated[int, typer.Option(help="Longest input the model takes.")],
        out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint directory to write.")],
        causal: Annotated[bool, typer.Option(help="Causal attention (a decoder).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Compile a RASP program to a validated workbench model (loads with workbench.load)."""
        from rasp.compiler.compiler import compile_rasp

        try:
            sop = load_program(program)
            compiled = compile_rasp(sop, set(tokens_of(vocab)), max_len, causal=causal)
        except errors as exc:
            raise fail(exc) from None
        compiled.save(out)
        c = compiled.model.config
        summary = {
            "program": sop.label,
            "out": str(out),
            "layers": c.n_layers,
            "heads": c.n_heads,
            "d_model": c.d_model,
            "d_mlp": c.d_mlp,
            "causal": causal,
            "ground_truth_edges": len(compiled.ground_truth.edges),
        }
        if as_json:
            print(json.dumps(summary))
            return
        console.print(
            f"compiled {sop.label}: {c.n_layers} layers, {c.n_heads} heads, d_model "
            f"{c.d_model}, validated against the interpreter; wrote {out}"
        )

    @rasp_cli.command("run")
    def run_command(
        program: Annotated[str, typer.Argument(help="A .rasp file or module:attr.")],
        input: Annotated[str, typer.Option("--input", help="abc, or 1,2,3 for numbers.")],
        causal: Annotated[bool, typer.Option(help="Evaluate causally.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Run a program in the interpreter, and report the layers and heads it needs."""
        from rasp.analysis import requirements

        try:
            sop = load_program(program)
            values = rasp.evaluate(sop, tokens_of(input), causal=causal)
            needs = requirements(sop)
        except errors as exc:
            raise fail(exc) from None
        if as_json:
            print(json.dumps({"output": values, "requirements": needs.to_json()}, default=str))
            return
        console.print(f"{sop.label}: {values}")
        console.print(f"needs {needs.layers} layers, at most {needs.max_heads} heads per layer")

    cli.add_typer(rasp_cli, name="rasp")
