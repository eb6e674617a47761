"""`workbench compile` and `workbench rasp run`, registered through the `workbench.commands`
entry point so that the core CLI never imports the RASP package.

PROGRAM is a `.rasp` file (the paper's language) or `module:attr` naming a SOp, or a function
returning one (`rasp.library:make_hist`). A function's arguments come as `--arg NAME=VALUE`,
each VALUE a RASP expression (`tokens`, `indices`, `length`, `3`, `"a"`, `[1, 2]`,
`tokens == "a"`) or else the text itself, as a string (`--arg token=a`):

    workbench compile rasp.library:make_reverse --arg sop=tokens --vocab a,b,c --max-len 5 -o out

Every bad input (a missing file, a syntax error, an unknown function, a missing argument, a bad
--input, --vocab or --max-len) ends with one line on stderr and exit status 2."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from rasp import rasp
from workbench.errors import InputError, UnknownNameError, WorkbenchError, close_matches

rasp_cli = typer.Typer(help="Run RASP programs.", no_args_is_help=True)

COMPILE_USAGE = "workbench compile {program}{args} --vocab a,b,c --max-len 5 -o out"
RUN_USAGE = "workbench rasp run {program}{args} --input abc"
ARG_HELP = "NAME=VALUE for a module:attr function (repeat it), e.g. --arg sop=tokens."


def load_program(spec: str, args: Sequence[str] = (), usage: str = RUN_USAGE) -> rasp.SOp:
    """A program from a .rasp file or a `module:attr` (a SOp, or a function giving one, called
    with `args`, each NAME=VALUE). `usage` shows the command in error messages."""
    from rasp.parser import load

    if spec.endswith(".rasp"):
        if args:
            raise InputError(f"--arg is for module:attr functions; {spec} is a .rasp file")
        if not Path(spec).is_file():
            raise InputError(f"no RASP file {spec}: give the path of a .rasp file")
        try:
            return load(spec).output
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {spec}: {exc}") from None
    value = _attribute(spec)
    if callable(value) and not isinstance(value, rasp.RASPExpr):
        value = call_with_args(value, spec, args, usage)
    elif args:
        raise InputError(f"{spec} is a {type(value).__name__}, not a function: it takes no --arg")
    if not isinstance(value, rasp.SOp):
        raise InputError(f"{spec} is a {type(value).__name__}, not a RASP SOp")
    return value


def _attribute(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(
            f"PROGRAM {spec!r} is neither a .rasp file nor module:attr (e.g. "
            "rasp.library:make_hist)"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing as it runs
        raise InputError(
            f"cannot import {module_name} ({type(exc).__name__}: {exc}); PROGRAM is a .rasp "
            "file or module:attr with an importable module (e.g. rasp.library:make_hist)"
        ) from None
    if not hasattr(module, attr):
        public = [name for name in dir(module) if not name.startswith("_")]
        raise UnknownNameError(
            f"{module_name} has no {attr!r}; closest: {close_matches(attr, public)}"
        )
    return getattr(module, attr)


def parse_args(pairs: Sequence[str]) -> dict[str, Any]:
    """NAME=VALUE pairs as {name: value} (see `arg_value`)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise InputError(f"--arg {pair!r} is not NAME=VALUE (e.g. --arg sop=tokens)")
        if name in values:
            raise InputError(f"--arg {name} is given twice")
        values[name] = arg_value(text.strip())
    return values


def arg_value(text: str) -> Any:
    """A RASP expression's value (`tokens`, `3`, `[1, 2]`, `tokens == "a"`), or, when `text`
    is not one (`a`, `(`), the text itself as a string."""
    from rasp.parser import RASPSyntaxError, expression

    try:
        return expression(text)
    except RASPSyntaxError:
        return text


def call_with_args(
    function: Callable[..., Any], spec: str, pairs: Sequence[str], usage: str
) -> Any:
    """`function` called with the NAME=VALUE `pairs` by parameter name (positional-only ones
    and *args in order); a missing or unknown name is an `InputError` listing the parameters
    and an example command."""
    values = parse_args(pairs)
    given = {pair.partition("=")[0].strip(): pair.partition("=")[2].strip() for pair in pairs}
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: no arguments then
        parameters = []
    names = [p.name for p in parameters if p.kind is not p.VAR_KEYWORD]
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        unknown = [name for name in values if name not in names]
        if unknown:
            has = f"its parameters are ({_describe(parameters)})" if names else "it takes none"
            raise InputError(f"{spec} has no parameter {', '.join(unknown)}; {has}")
    kind = inspect.Parameter
    required = (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)
    missing = [
        p
        for p in parameters
        if p.kind in required and p.default is p.empty and p.name not in values
    ]
    functions = [p.name for p in missing if "Callable" in str(p.annotation)]
    if functions:
        raise InputError(
            f"{spec} takes a function ({', '.join(functions)}), which --arg cannot pass: build "
            "the program in Python and name it as module:attr"
        )
    if missing:
        example = "".join(
            f" --arg {p.name}={given.get(p.name) or _example(p)}"
            for p in parameters
            if p.kind in required and (p.default is p.empty or p.name in values)
        )
        raise InputError(
            f"{spec} needs {', '.join(p.name for p in missing)}: its parameters are "
            f"({_describe(parameters)}); pass each as --arg NAME=VALUE, e.g. "
            + usage.format(program=spec, args=example)
        )
    positional, keywords = _bind(parameters, values)
    try:
        return function(*positional, **keywords)
    except WorkbenchError:
        raise
    except Exception as exc:  # the arguments did not suit it
        raise InputError(f"{spec} failed on its arguments: {type(exc).__name__}: {exc}") from None


def _bind(parameters: list[inspect.Parameter], values: dict[str, Any]) -> tuple[list, dict]:
    """Positional and keyword arguments: positional-only parameters in order, and when *args
    is given, every parameter before it too (Python fills those first)."""
    kind = inspect.Parameter
    starred = any(p.kind is kind.VAR_POSITIONAL and p.name in values for p in parameters)
    in_order = (
        (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD) if starred else (kind.POSITIONAL_ONLY,)
    )
    positional: list[Any] = []
    keywords = dict(values)
    for p in parameters:
        if p.kind in in_order:
            positional.append(keywords.pop(p.name, p.default))
        elif p.kind is kind.VAR_POSITIONAL and p.name in keywords:
            items = keywords.pop(p.name)
            if not isinstance(items, (list, tuple)):
                raise InputError(f"--arg {p.name} takes a list, e.g. --arg {p.name}=[tokens]")
            positional.extend(items)
    while positional and positional[-1] is kind.empty:
        positional.pop()  # trailing positional-only parameters left to their defaults
    return positional, keywords


def _describe(parameters: list[inspect.Parameter]) -> str:
    """`sop: rasp.SOp, *, max_seq_len: int`: annotations as written, no quotes."""
    parts, starred = [], False
    for p in parameters:
        if p.kind is p.KEYWORD_ONLY and not starred:
            parts.append("*")
        starred = starred or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        text = prefix + p.name
        if p.annotation is not p.empty:
            text += f": {inspect.formatannotation(p.annotation).strip(chr(39))}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        parts.append(text)
    return ", ".join(parts)


def _example(parameter: inspect.Parameter) -> str:
    """A plausible VALUE for an error message's example command, from the annotation."""
    annotation = str(parameter.annotation)
    for marker, example in (("SOp", "tokens"), ("int", "5"), ("float", "1"), ("Seq", "abc")):
        if marker in annotation:
            return example
    return "a" if "str" in annotation else "tokens"


def tokens_of(text: str, what: str = "--input", *, numbers: bool = False) -> list[Any]:
    """'a1b' -> ['a', '1', 'b'] (each character, as the official RASP interpreter reads a
    string); 'ab,c' -> ['ab', 'c']; with `numbers` (a Python program's input), '1,2,3' ->
    [1, 2, 3]. A .rasp program reads digits as numbers through `tokens_int`."""
    items = [item.strip() for item in text.split(",")] if "," in text else list(text)
    if not items or any(not item.strip() for item in items):
        raise InputError(
            f"{what} {text!r} holds no tokens or an empty or blank one: give them as abc, "
            "or a,b,c (1,2,3 for numbers)"
        )
    return [_value(item) for item in items] if numbers and "," in text else items


def _value(item: str) -> Any:
    try:
        return int(item)
    except ValueError:
        return item


def register(cli: typer.Typer) -> None:
    from workbench.cli import console, fail

    errors = (WorkbenchError, ValueError)  # ValueError: the interpreter's EvaluationError

    @cli.command("compile")
    def compile_command(
        program: Annotated[str, typer.Argument(help="A .rasp file or module:attr.")],
        vocab: Annotated[
            str,
            typer.Option(
                help="Input tokens: a,b,c (numbers become ints for a module:attr program)."
            ),
        ],
        max_len: Annotated[int, typer.Option(help="Longest input the model takes.")],
        out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint directory to write.")],
        arg: Annotated[list[str] | None, typer.Option("--arg", help=ARG_HELP)] = None,
        causal: Annotated[bool, typer.Option(help="Causal attention (a decoder).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
        force: Annotated[
            bool, typer.Option(help="Replace an existing checkpoint at -o (in one step).")
        ] = False,
        html: Annotated[
            Path | None,
            typer.Option("--html", help="Write the ground-truth circuit as an HTML page."),
        ] = None,
    ) -> None:
        """Compile a RASP program to a validated workbench model (loads with workbench.load).
        Written atomically; an existing -o directory is refused unless --force."""
        from rasp.compiler.compiler import compile_rasp
        from workbench.files import check_output_file, check_target

        try:
            check_target(out, force)  # before compiling: refused at once, not after minutes
            if html is not None:
                check_output_file(html)
            sop = load_program(program, arg or (), COMPILE_USAGE)
            tokens = tokens_of(vocab, "--vocab", numbers=not program.endswith(".rasp"))
            compiled = compile_rasp(sop, set(tokens), max_len, causal=causal)
            compiled.save(out, force=force)
            if html is not None:
                from workbench.html import write_figure

                write_figure("rasp-circuit", compiled, html)
        except errors as exc:
            raise fail(exc) from None
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
            f"{c.d_model}, validated against the interpreter; wrote {out}",
            markup=False,
            emoji=False,
        )

    @rasp_cli.command("run")
    def run_command(
        program: Annotated[str, typer.Argument(help="A .rasp file or module:attr.")],
        input: Annotated[
            str,
            typer.Option(
                "--input",
                help="abc (characters), or a,b,c; 1,2,3 are numbers for a module:attr program.",
            ),
        ],
        arg: Annotated[list[str] | None, typer.Option("--arg", help=ARG_HELP)] = None,
        causal: Annotated[bool, typer.Option(help="Evaluate causally.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        html: Annotated[
            Path | None,
            typer.Option("--html", help="Write every SOp's values as an HTML page."),
        ] = None,
    ) -> None:
        """Run a program in the interpreter, and report the layers and heads it needs."""
        from rasp.analysis import program_values, requirements

        try:
            sop = load_program(program, arg or (), RUN_USAGE)
            xs = tokens_of(input, numbers=not program.endswith(".rasp"))
            values = rasp.evaluate(sop, xs, causal=causal)
            needs = requirements(sop)
            if html is not None:
                from workbench.html import write_figure

                write_figure("rasp-values", program_values(sop, xs, causal), html)
        except errors as exc:
            raise fail(exc) from None
        if as_json:
            print(json.dumps({"output": values, "requirements": needs.to_json()}, default=str))
            return
        console.print(f"{sop.label}: {values}", markup=False, emoji=False)
        paper = needs.paper
        console.print(
            f"the paper's count: {paper.layers} layers, at most {paper.max_heads} heads per "
            "layer (attention layers; a head per distinct selector; elementwise operations free)"
        )
        console.print(
            f"compiled placement: {needs.layers} layers, at most {needs.max_heads} heads per "
            "layer (attention and MLP sublayers; a head per aggregate or selector width)"
        )

    @rasp_cli.command("repl")
    def repl_command() -> None:
        """The RASP read-eval-print loop, as the official interpreter's (tech-srl/RASP):
        statements, an example whose values print after each, `set example`, `load`,
        `draw`; `exit` or Ctrl-D ends it."""
        from rasp.repl import main

        main()

    cli.add_typer(rasp_cli, name="rasp")

    from rasp.learned.cli import register as register_learned

    register_learned(cli)
