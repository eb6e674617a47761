"""`workbench rasp repl`: the RASP read-eval-print loop, as the official interpreter's
(tech-srl/RASP, "RASP 0.1") behaves.

Each statement is read (over several lines until it is complete: `..` prompts), run, and
its result printed. A sequence prints with its values on the running example, a selector
with its matrix, and atoms, lists, dicts and functions as they are. `set example X` changes
the example (`set s-op example` / `set selector example` one of the two), `show example`
prints it, `examples on|off` and `full seq display on|off` change how values print, `load
"file";` runs file.rasp and prints what it defines (names starting with `_` stay private),
`draw(sop);` writes the computation flow of `sop` on the example as an HTML page, and
`exit` or `quit` (or the end of the input) ends the session. The library's names are
reserved at the prompt.

The output follows the official REPL's, line for line, except for the wording of errors:
a syntax error says where and what could have stood there, and other errors use our
messages where the official one is an implementation's own (a Python exception's text).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lark import Tree

from rasp import rasp
from rasp.interpreter import EvaluationError
from rasp.language import (
    Applied,
    Builder,
    Function,
    PlacedError,
    ReservedName,
    Scope,
    UnknownName,
    find_file,
    unpacked,
)
from rasp.operations import ATOMS, LanguageError, Primitive
from rasp.parser import IncompleteProgram, RASPSyntaxError, library_scope, statements
from workbench.errors import InputError

PROMPT, MORE = ">> ", ".. "


class Stop(Exception):
    """`exit` or `quit`."""


class SequenceTypeError(Exception):
    """A sequence whose values are not one of the four atom types (the official
    interpreter refuses to build it)."""


@dataclass
class Printed:
    """What a loaded file printed, held until the file has run: then each name's last
    value is printed (all of them, in order, when the file reported an error)."""

    lines: list[tuple[str | None, Callable[[], None]]] = field(default_factory=list)
    failed: bool = False


class Session:
    """One REPL session writing to `out`. `cwd`: where `load` looks first."""

    def __init__(self, out: TextIO, cwd: Path | None = None) -> None:
        self.out, self.cwd = out, cwd or Path.cwd()
        library = library_scope()
        reserved = frozenset(library.reserved | set(library.names))
        self.scope = Scope({}, library, reserved=reserved)
        self.names = DisplayNames()
        self.examples: dict[str, str | list[Any]] = {"s-op": "hello", "selector": "hello"}
        self.show = {"s-op": True, "selector": True}
        self.verbose = False
        self.printed: Printed | None = None  # set while a file loads
        self.print("RASP 0.1")
        self.print("running example is:", self.examples["s-op"])

    # ----- output ----------------------------------------------------------------------
    def print(self, *parts: Any, end: str = "\n") -> None:
        self.out.write(" ".join(str(p) for p in parts) + end)

    def report(self, name: str | None, show: Callable[[], None]) -> None:
        """Print now, or hold it while a file loads."""
        if self.printed is None:
            show()
        else:
            self.printed.lines.append((name, show))

    def error(self, text: str) -> None:
        if self.printed is not None:
            self.printed.failed = True
        self.report(None, lambda: self.print(text))

    def ignored(self, message: str) -> None:
        self.error(f"\t\t!!ignoring input:\n\t {message}")

    # ----- reading ---------------------------------------------------------------------
    def run(self, read: Callable[[str], str]) -> None:
        """Read statements with `read(prompt)` (EOFError at the end) until `exit`."""
        buffer, more = "", False
        while True:
            depth = buffer.split().count("def")
            try:
                line = read((MORE if more else PROMPT) + "  " * depth)
            except EOFError:
                self.print("")
                return
            except KeyboardInterrupt:
                self.print("")
                buffer, more = "", False
                continue
            if line.strip().startswith("#"):
                line = ""
            buffer += line
            try:
                parsed = statements(buffer)
            except IncompleteProgram:
                buffer, more = buffer + "\n", True
                continue
            except RASPSyntaxError as error:
                self.print(f"\t!! syntax error: {error.message} \t-- ignoring input")
                buffer, more = "", False
                continue
            if not parsed:  # nothing yet: a blank line or a comment
                buffer, more = buffer + "\n", True
                continue
            buffer, more = "", False
            try:
                for statement in parsed:
                    self.statement(statement, self.scope)
            except Stop:
                return
            except KeyboardInterrupt:  # Ctrl-C stops the statement, not the session
                self.print("")

    # ----- running ---------------------------------------------------------------------
    def statement(self, tree: Tree, scope: Scope, file: str | None = None) -> None:
        """Run one statement in `scope` and print its result (`file`: the loaded file it
        stands in, whose private names are not printed)."""
        builder = Builder(
            scope, top=False, loader=self._loader(file), names=self.names, creator=file or "console"
        )
        try:
            self._statement(tree, builder, scope, file)
        except Stop:
            raise
        except Exception as error:
            self._failed(error)

    def _failed(self, error: Exception) -> None:
        """Print an error as the official REPL does for its kind: a program's mistake is an
        ignored input, a computation that failed on the example went wrong."""
        while True:  # the error itself, not where it was placed or computed
            if isinstance(error, PlacedError) and error.original is not None:
                error = error.original
            elif isinstance(error, EvaluationError) and isinstance(error.__cause__, Exception):
                error = error.__cause__
            else:
                break
        match error:
            case UnknownName():
                self.ignored(f"Error: Undefined variable: {error.name}")
            case ReservedName():
                self.ignored(f"Error: Cannot set reserved name: {error.name}")
            case SequenceTypeError() | LanguageError() | InputError():
                self.ignored(str(error))
            case _:
                self.error(f"something went wrong: {error}")

    def _statement(self, tree: Tree, builder: Builder, scope: Scope, file: str | None) -> None:
        match tree.data:
            case "exit":
                raise Stop
            case "set_example":
                self._set_example(tree, builder)
            case "show_example":
                self._show_example(str(tree.children[0]))
            case "examples":
                words = str(tree.children[0]).split()
                for kind in [words[0]] if len(words) == 3 else ["s-op", "selector"]:
                    self.show[kind] = words[-1] == "on"
            case "full_seq":
                self.verbose = str(tree.children[0]).split()[-1] == "on"
            case "assign":
                self._assign(tree, builder, scope, file)
            case "funcdef":
                builder.statement(tree)
                name = str(tree.children[0])
                self._named(name, scope.names[name], file)
            case "forloop" | "load":
                builder.statement(tree)
            case "draw":
                self._draw(tree, builder, file)
            case _:
                self._expression(tree, builder, scope, file)

    def _assign(self, tree: Tree, builder: Builder, scope: Scope, file: str | None) -> None:
        names = [str(t) for t in tree.children[0].children]
        values = builder.exprs(tree.children[1])
        for value in values:
            self._check(value)
        value: Any = values[0] if len(values) == 1 else values
        for name, item in zip(names, unpacked(value, len(names)), strict=True):
            scope.assign(name, item)
            if isinstance(item, rasp.RASPExpr):
                self.names.name(item, name)
            self._named(name, item, file)

    def _expression(self, tree: Tree, builder: Builder, scope: Scope, file: str | None) -> None:
        value = builder.expr(tree)
        self._check(value)
        if isinstance(value, Applied):
            if file is None:
                self._applied(value)
            return
        scope.names["out"] = value
        name = str(tree.children[0]) if tree.data == "name" else "out"
        self._named(name, value, file)

    def _set_example(self, tree: Tree, builder: Builder) -> None:
        example = builder.expr(tree.children[1])
        if not isinstance(example, (str, list)) or not example:
            raise LanguageError(f"example not iterable: {example}")
        words = str(tree.children[0]).split()
        for kind in [words[1]] if len(words) == 3 else ["s-op", "selector"]:
            self.examples[kind] = example

    def _show_example(self, text: str) -> None:
        words = text.split()
        kinds = [words[1]] if len(words) == 3 else ["s-op", "selector"]
        if "s-op" in kinds:
            self.print("\ts-op example:", _atom(self.examples["s-op"]))
        if "selector" in kinds:
            self.print("\tselector example:", _atom(self.examples["selector"]))

    def _draw(self, tree: Tree, builder: Builder, file: str | None) -> None:
        from rasp.analysis import program_values
        from workbench.html import write_figure

        sop = builder.expr(tree.children[0])
        example = self.examples["s-op"]
        if len(tree.children) > 1 and tree.children[1] is not None:
            example = builder.expr(tree.children[1])
        if not isinstance(sop, rasp.SOp):
            raise LanguageError(f"draw expects unfinished sequence, got: {sop}")
        path = self.cwd / (re.sub(r"[^A-Za-z0-9_.-]+", "_", self.names.of(sop)) + ".flow.html")
        write_figure("rasp-values", program_values(sop, list(example)), path)
        applied = Applied(sop, list(example), rasp.evaluate(sop, list(example)))
        if file is None:
            self._applied(applied)
            self.print(f"\t(the computation flow: {path})")

    def _check(self, value: Any) -> None:
        """Compute `value` on the example, as the official REPL does before it keeps a
        result: an error there stops the statement."""
        if isinstance(value, rasp.SOp):
            _sequence_type(rasp.evaluate(value, list(self.examples["s-op"])))
        elif isinstance(value, rasp.Selector):
            rasp.evaluate(value, list(self.examples["selector"]))
        elif isinstance(value, Applied) and isinstance(value.expr, rasp.SOp):
            _sequence_type(value.values)
        elif isinstance(value, list):
            for item in value:
                self._check(item)
        elif isinstance(value, dict):
            for item in value.values():
                self._check(item)

    # ----- loading ---------------------------------------------------------------------
    def _loader(self, file: str | None):
        def load(name: str, scope: Scope) -> dict[str, Any]:
            return self.load(find_file(name, self.cwd, scope), name, scope)

        return load

    def load(self, path: Path, name: str, caller: Scope) -> dict[str, Any]:
        """Run the file at `path` (loaded as `name`) and print what it defines. Each public
        name it assigns is assigned in `caller` at once, as in the official REPL (so a
        name `caller` reserves is an error at that statement)."""
        outer, self.printed = self.printed, Printed()
        shown = dict(self.show)
        self.show = {"s-op": False, "selector": False}
        inner = _Stealing(caller, file=path)
        try:
            for statement in statements(path.read_text()):
                try:
                    self.statement(statement, inner, file=name)
                except Stop:
                    break
        finally:
            printed, self.printed = self.printed, outer
        try:  # printed as the official REPL does: before the examples are back on
            self._dump(printed)
        finally:
            self.show = shown
        return {}  # already assigned in the caller

    def _dump(self, printed: Printed) -> None:
        lines = printed.lines
        if not printed.failed:  # each name's last value only
            seen: set[str] = set()
            kept = []
            for line in reversed(lines):
                if line[0] is not None and line[0] in seen:
                    continue
                if line[0] is not None:
                    seen.add(line[0])
                kept.append(line)
            lines = kept[::-1]
        for name, show in lines:
            self.report(name, show)

    # ----- printing values -------------------------------------------------------------
    def _named(self, name: str, value: Any, file: str | None) -> None:
        if file is not None and (name.startswith("_") or name == "out"):
            return
        self.report(name, lambda: self.show_value(name, value))

    def _applied(self, applied: Applied) -> None:
        if isinstance(applied.expr, rasp.Selector):
            self.print("\t = ")
            self._matrix(applied.input, applied.values, "")
        elif self.verbose:
            self.print("\t = ", end="")
            self._verbose(applied.input, applied.values, on_the_line=True)
        else:
            self.print("\t = ", _sequence_text(applied.values))

    def show_value(self, name: str | None, value: Any, tabs: int = 0, first: str = "") -> None:
        pref = "\t" * tabs
        if name is None and isinstance(value, rasp.RASPExpr):
            name = self.names.of(value)
        if isinstance(value, rasp.SOp):
            self.print(pref, first, "   s-op:", name)
            if self.show["s-op"]:
                example = self.examples["s-op"]
                values = rasp.evaluate(value, list(example))
                said = f"{name}({_atom(example)}) ="
                if self.verbose:
                    self.print(f"{pref} \t Example:", end="")
                    self._verbose(self.examples["selector"], values, True, pref, said)
                else:
                    self.print(f"{pref} \t Example: {said}", _sequence_text(values))
        elif isinstance(value, rasp.Selector):
            self.print(pref, first, f"   selector: {name}")
            if self.show["selector"]:
                self.print(f"{pref} \t Example:")
                example = self.examples["selector"]
                self._matrix(example, rasp.evaluate(value, list(example)), pref)
        elif isinstance(value, (Function, Primitive)):
            args = ", ".join(value.params)
            self.print(f"{pref} {first}    {value.creator} function: {value.name}({args})")
        elif isinstance(value, (list, dict)):
            self._container(name, value, pref, first, tabs)
        else:
            said = f"{name} = " if name is not None else ""
            self.print(f"{pref}    value: {said}", _atom(value))

    def _container(self, name: str | None, value: list | dict, pref: str, first: str, tabs: int):
        kind = "list" if isinstance(value, list) else "dict"
        named = f"   {kind}: " + (f"{name} = " if name is not None else "")
        self.print(f"{pref} {first} {named}", end="")
        items = value if isinstance(value, list) else list(value.values())
        if not any(isinstance(v, (list, dict, rasp.RASPExpr)) for v in items):
            self.print(str(value))
            return
        self.print(f"{pref} [" if kind == "list" else f"{pref} {{")
        if isinstance(value, list):
            for item in value:
                self.show_value(None, item, tabs + 2)
        else:
            for key, item in value.items():
                self.show_value(None, item, tabs + 3, first=_atom(key) + " : ")
        self.print(pref + " " * (len(named) + 2) + ("]" if kind == "list" else "}"))

    def _matrix(self, example: Any, rows: list[list[bool]], pref: str) -> None:
        self.print(pref, "\t\t\t    ", " ".join(str(v) for v in example))
        for token, row in zip(example, rows, strict=False):
            self.print(pref, "\t\t\t", token, "|", " ".join("1" if v else " " for v in row))

    def _verbose(self, example, values, on_the_line=False, pref="", said="") -> None:
        """The official `full seq display on` form: input and output aligned, or one
        value when all are equal."""
        if len(set(values)) == 1:
            self.print(pref if not on_the_line else "", said, _sequence_text(values), end=" ")
            self.print("[skipped full display: identical values]")
            return
        if on_the_line:
            self.print("")
        kind = _sequence_type(values)
        shown_in, shown_out = _bools_marked(list(example)), _bools_marked(values)
        texts_in, texts_out = [str(v) for v in shown_in], [str(v) for v in shown_out]
        width = max(len(t) for t in texts_in + texts_out)

        def line(texts: list[str]) -> str:
            return " ".join(t.rjust(width) for t in texts)

        self.print(pref, "\t\tinput:  ", line(texts_in), "\t", f"({_sequence_type(example)}s)")
        self.print(pref, "\t\toutput: ", line(texts_out), "\t", f"({kind}s)")


class DisplayNames:
    """The names the official REPL shows for values a program did not name: a function's
    result is `f(args)`, a select `plain select`, any other sequence `s-op` (selector
    `sel`), and a name over 30 characters is replaced the same way. Assigning a value
    renames it, as in the official REPL. (Kept beside the values: a SOp's label is its
    identity for the compiler, a display name is not.)"""

    LIMIT = 30

    def __init__(self) -> None:
        self._names: dict[int, tuple[Any, str]] = {}  # id -> (the value, kept alive; name)

    def name(self, value: Any, name: str) -> None:
        self._names[id(value)] = (value, name)

    def of(self, value: Any) -> str:
        found = self._names.get(id(value))
        name = found[1] if found is not None and found[0] is value else None
        if name is None and isinstance(value, rasp.Select):
            name = "plain select"
        if name is None or len(name) > self.LIMIT:
            name = "sel" if isinstance(value, rasp.Selector) else "s-op"
        return name

    def describe(self, value: Any, cap: int | None = None) -> str:
        """A value as the REPL writes it in a name: a sequence's name, a string quoted,
        a list or dict spelled out (or `(list)`, `(dict)` when longer than `cap`)."""
        if isinstance(value, rasp.RASPExpr):
            return self.of(value)
        if isinstance(value, (list, dict)):
            if isinstance(value, list):
                text = "[" + ", ".join(self.describe(v) for v in value) + "]"
            else:
                text = (
                    "{"
                    + ", ".join(f"{self.describe(k)}: {self.describe(v)}" for k, v in value.items())
                    + "}"
                )
            if cap is not None and len(text) > cap:
                return "(list)" if isinstance(value, list) else "(dict)"
            return text
        if isinstance(value, str):
            return f'"{value}"'
        return str(value)


class _Stealing(Scope):
    """A loaded file's scope: over the library, and assigning its public names in the
    scope that loaded it too."""

    def __init__(self, caller: Scope, *, file: Path) -> None:
        super().__init__({}, library_scope(), file=file)
        self.caller = caller

    def assign(self, name: str, value: Any) -> None:
        super().assign(name, value)
        if not name.startswith("_") and name != "out":
            self.caller.assign(name, value)


# ----- value texts -----------------------------------------------------------------------


def _sequence_type(values: list[Any]) -> str:
    """The official interpreter's type of a sequence: string, bool, int or float (ints and
    floats mixed are floats); anything else is an error."""
    for kind, name in ((str, "string"), (bool, "bool"), (int, "int"), (float, "float")):
        if all(isinstance(v, kind) for v in values):
            return name
    if all(isinstance(v, (int, float)) for v in values):
        return "float"
    if all(isinstance(v, ATOMS) for v in values):
        raise SequenceTypeError(
            f"attempted to create sequence with vals of different types:\n\t\t {values}"
        )
    raise SequenceTypeError(
        "attempted to create sequence with illegal val types (vals must be bool, float, int "
        f"or string):\n\t\t {values}"
    )


def _small(value: Any) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return str(round(value, 3))
    return str(value)


def _sequence_text(values: list[Any]) -> str:
    kind = _sequence_type(values)
    if len(values) > 1 and len(set(values)) == 1:
        body = f"[{_small(values[0])}]*{len(values)}"
    else:
        body = "[" + ", ".join(_small(v) for v in values) + "]"
    return f"{body} ({kind}s)"


def _bools_marked(values: list[Any]) -> list[Any]:
    """Booleans as the official display shows them: the rarer value marked (T or F), the
    other blank."""
    if not values or not isinstance(values[0], bool):
        return values
    trues = values.count(True)
    mark_true, mark_false = trues <= len(values) - trues, len(values) - trues <= trues
    return [("T" if mark_true else "") if v else ("F" if mark_false else "") for v in values]


def _atom(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


# ----- the command -----------------------------------------------------------------------


@contextlib.contextmanager
def _history() -> Iterator[None]:
    """Line editing and a history kept in ~/.workbench_rasp_history, on a terminal."""
    try:
        import readline
    except ImportError:  # not on every platform
        yield
        return
    path = Path.home() / ".workbench_rasp_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)


def main(stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    """Run a session on standard input and output (prompts included, as `input` writes
    them)."""
    source: TextIO = sys.stdin if stdin is None else stdin
    out: TextIO = sys.stdout if stdout is None else stdout
    session = Session(out)

    def read(prompt: str) -> str:
        out.write(prompt)
        out.flush()
        line = source.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    if source.isatty() and out.isatty():
        with _history():
            session.run(input)
    else:
        session.run(read)
