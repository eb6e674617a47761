"""The textual RASP language of the paper (Weiss et al. 2021) as the official interpreter
(tech-srl/RASP) reads it, parsed into the same expression tree as the embedded DSL
(`rasp.rasp`), so a parsed program runs in the interpreter and goes through the compiler like
any other. What each construct means is in `rasp.language`.

    hist = selector_width(select(tokens, tokens, ==));
    reverse = aggregate(select(indices, length - indices - 1, ==), tokens);
    def frac(seq, tok) { return numerical aggregate(select(indices, indices, <=), seq == tok, 0); }
    digits = [d for d in range(10)];
    val1, val2 = f(tokens_int);

Statements end with `;`: expressions, assignments (`a, b = x, y`), `def name(args) { ...;
return expr[, expr]; }` (nested too), `for names in list { ... }`, `load "file";` and
`draw(sop);`; and, without `;`, the REPL's `set example X`, `show example`, `examples on|off`,
`full seq display on|off`, `exit`. Comments start with `#`.

Expressions, loosest first (each level left-associative, as tech-srl's grammar has them):
`x in y`; `a if c else b` (so `a if c else b if d else e` needs brackets to nest right);
`and`/`or` (one level: `a or b and c` is `(a or b) and c`); comparisons; `+ -`; `%`;
`* / //`; `^`; the prefixes `not`, `-`, `+`, `numerical`, `categorical` (`not x == 1` is
`(not x) == 1`); indexing `x[i]` and calls `f(...)`. Atoms: numbers, strings, names,
`[lists]`, `{dicts}`, comprehensions `[e for x in xs]` and `{k: v for x in xs}`, tuples and
`select(keys, queries, op)` with op one of == != < <= > >= True False. Calls: `def`s, the
library (`rasp/rasplib.rasp`), `aggregate`, `selector_width`, `round`, `indicator`,
`range`, `zip`, `len`, and (extensions) `map(lambda x: ..., sop)`, `zip(lambda x, y: ...,
a, b)`; a sequence applied to an input (`reverse("abc")`) is its values.

Errors are `RASPSyntaxError`s that give the line and column. Parsing is LALR(1), so its time
grows linearly with the program. Constant expressions are folded as they are read (`"ab" * 3`
is `"ababab"`); a folded value may hold at most `MAX_CONSTANT_SIZE` items (`rasp.operators`),
so a program cannot ask for gigabytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken

from rasp import rasp
from rasp.language import (
    Builder,
    LanguageError,
    LoadRequest,
    PlacedError,
    Scope,
    builtins,
    find_file,
    where,
)
from rasp.operations import primitives
from rasp.operators import ConstantTooLargeError
from workbench.errors import InputError

LIBRARY_FILE = Path(__file__).with_name("rasplib.rasp")

GRAMMAR = r"""
start: _stmt*
_stmt: _simple ";" | funcdef | forloop | repl
_simple: assign | expr | load | draw
assign: names "=" exprs
names: NAME ("," NAME)*
exprs: expr ("," expr)*
load: "load" STRING
draw: "draw" "(" expr ("," expr)? ")"
funcdef: "def" NAME "(" [names] ")" "{" body "}"
body: _stmt* "return" exprs ";"
forloop: "for" names "in" expr "{" _stmt* "}"
repl: SET_EXAMPLE expr -> set_example
     | SHOW_EXAMPLE -> show_example
     | EXAMPLES -> examples
     | FULL_SEQ -> full_seq
     | EXIT -> exit

?expr: contain
?contain: cond
        | contain "in" cond -> contains
?cond: logic
     | cond "if" expr "else" logic -> cond
?logic: compare
      | logic LOGIC compare -> logic
?compare: sum
        | compare CMP sum -> binary
?sum: mod
    | sum ADD mod -> binary
?mod: product
    | mod MOD product -> binary
?product: power
        | product MUL power -> binary
?power: unary
      | power POW unary -> binary
?unary: "not" unary -> not_op
      | ADD unary -> sign
      | ENCODING unary -> annotate
      | postfix
?postfix: atom
        | postfix "[" expr "]" -> index
        | postfix "(" [arg ("," arg)*] ")" -> call
?atom: NUMBER -> number
     | STRING -> string
     | NAME -> name
     | "(" expr ")"
     | "(" expr "," [expr ("," expr)*] ")" -> tuple
     | "[" [expr ("," expr)*] "]" -> list
     | "[" expr "for" names "in" expr "]" -> listcomp
     | "{" [pair ("," pair)*] "}" -> dict
     | "{" expr ":" expr "for" names "in" expr "}" -> dictcomp
     | SELECT "(" expr "," expr "," (OP | expr) ")" -> select
pair: expr ":" expr
?arg: expr | lambda_
lambda_: "lambda" NAME ("," NAME)* ":" expr

SET_EXAMPLE.3: /set\s+((s-op|selector)\s+)?example(?![A-Za-z0-9_])/
SHOW_EXAMPLE.3: /show\s+((s-op|selector)\s+)?example(?![A-Za-z0-9_])/
EXAMPLES.3: /((s-op|selector)\s+)?examples\s+(on|off)(?![A-Za-z0-9_])/
FULL_SEQ.3: /full\s+seq\s+display\s+(on|off)(?![A-Za-z0-9_])/
SELECT.2: /select(?![A-Za-z0-9_])/
EXIT.3: /(exit|quit)(\s*\(\s*\))?(?![A-Za-z0-9_])/
ENCODING.2: /(numerical|categorical)(?![A-Za-z0-9_])/
LOGIC.2: /(and|or)(?![A-Za-z0-9_])/
CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
OP.-1: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/" | "//"
MOD: "%"
POW: "^"
NAME: /(?!(def|return|lambda|if|else|and|or|not|in|for|load|draw|select|numerical|categorical)(?![A-Za-z0-9_]))[A-Za-z_][A-Za-z_0-9]*/
NUMBER: /\d+(\.\d+)?/
STRING: /"[^"\n]*"/ | /'[^'\n]*'/
COMMENT: /#[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""

# LALR(1): one pass, linear time. The grammar has no conflicts (lark refuses to build a
# parser for one that has), and the contextual lexer tells a comparison operand (OP, in a
# select's arguments) from a comparison (CMP) by where it stands.
_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)
# How expected terminals read in an error message (the others are their literal text).
_TERMINAL_TEXT = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "ENCODING": "numerical",
    "CMP": "==",
    "OP": "==",
    "ADD": "+",
    "MUL": "*",
}


class RASPSyntaxError(InputError):
    """A program that does not parse or does not make sense, with its line and column."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line, self.column, self.message = line, column, message


class IncompleteProgram(RASPSyntaxError):
    """A text that ends before its last statement does (the REPL reads on)."""


@dataclass(frozen=True)
class Program:
    """A parsed program: every top-level name it assigned, and its output (the last
    assignment or expression)."""

    names: dict[str, Any]
    output: rasp.SOp


def parse(source: str, *, loads: bool = True, file: str | Path | None = None) -> Program:
    """The program `source`, run as a file: its names start as the library's, and it may
    define its own with the library's names. `loads`: whether `load "name";` may read
    `name.rasp` (relative to the working directory, then to `file`'s folder); a server
    passes False."""
    scope = Scope({}, library_scope(), file=Path(file) if file is not None else None)
    last = run(source, scope, loads=loads)
    if not isinstance(last, rasp.SOp):
        raise RASPSyntaxError("the program computes no sequence: end it with a SOp", 1, 1)
    return Program(dict(scope.names), last)


def run(source: str, scope: Scope, *, loads: bool = True, top: bool = True) -> Any:
    """Run every statement of `source` in `scope`; the value of the last one that has a
    value (an expression or assignment)."""
    tree = _parse_tree(source)
    builder = Builder(scope, top=top, loader=_load_file if loads else None)
    last: Any = None
    for statement in tree.children:
        value = _located(statement, lambda s=statement: builder.statement(s))
        if value is not None:
            last = value
    return last


def statements(source: str) -> list[Tree]:
    """The statements of `source`, parsed (`IncompleteProgram` if it ends inside one)."""
    return [s for s in _parse_tree(source).children if isinstance(s, Tree)]


def _parse_tree(source: str) -> Tree:
    try:
        return _PARSER.parse(source)
    except UnexpectedInput as error:
        raise _syntax_error(error, source) from None


def _located(tree: Tree | Token, build) -> Any:
    """`build()`, its errors as `RASPSyntaxError`s at the innermost construct's place (or
    the statement's)."""
    try:
        return build()
    except RASPSyntaxError:
        raise
    except PlacedError as error:
        raise RASPSyntaxError(str(error), error.line, error.column) from None
    except LoadRequest:
        raise RASPSyntaxError(
            "load is not available here: paste the file's statements instead", *where(tree)
        ) from None
    except (LanguageError, ConstantTooLargeError) as error:
        raise RASPSyntaxError(str(error), *where(tree)) from None
    except Exception as error:  # a statement's own failure (a bad loop, a bad assignment)
        raise RASPSyntaxError(str(error) or type(error).__name__, *where(tree)) from None


def expression(text: str) -> Any:
    """The value of one expression, unnamed: a SOp, a selector or a plain value (`tokens`,
    `3`, `[1, 2]`, `"a"`, `tokens == "a"`). A `RASPSyntaxError` if `text` is not one."""
    source = f"_ = {text}\n;"  # the newline ends a trailing comment
    tree = _parse_tree(source)
    first = tree.children[0] if len(tree.children) == 1 else None
    if (
        not isinstance(first, Tree)
        or first.data != "assign"
        or len(first.children[1].children) != 1
    ):
        raise RASPSyntaxError(f"{text!r} is not one expression", 1, 1)
    builder = Builder(Scope({}, library_scope()), top=False)
    return _located(first, lambda: builder.expr(first.children[1].children[0]))


@functools.cache
def library_scope() -> Scope:
    """The names every program starts with: the built-ins and the library. Shared, never
    written: a program's own names go in a scope nested in it."""
    scope = Scope(primitives(), Scope(builtins(), None))
    tree = _parse_tree(LIBRARY_FILE.read_text())
    builder = Builder(scope, top=False, creator="rasplib")
    for statement in tree.children:
        builder.statement(statement)
    return scope


def _load_file(name: str, scope: Scope) -> dict[str, Any]:
    """The public names (not `_x`, not `out`) of the program `name`.rasp, run in its own
    scope over the library, as tech-srl's `load` does."""
    path = find_file(name, Path.cwd(), scope)
    inner = Scope({}, library_scope(), file=path)
    try:
        run(path.read_text(), inner)
    except RASPSyntaxError as error:
        raise LanguageError(f"in {path}: {error}") from None
    return {k: v for k, v in inner.names.items() if not k.startswith("_") and k != "out"}


def _syntax_error(error: UnexpectedInput, source: str) -> RASPSyntaxError:
    """One line: where, what was found, and what could have stood there instead."""
    expected = _expected(error)
    hint = f"; expected one of {', '.join(expected)}" if expected else ""
    ended = isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    )
    if ended:  # point just past the end
        lines = source.rstrip().split("\n")
        return IncompleteProgram(f"the program ends early{hint}", len(lines), len(lines[-1]) + 1)
    if isinstance(error, UnexpectedToken):
        found = repr(str(error.token))
    else:  # a character no token starts with
        found = repr(source[error.pos_in_stream]) if error.pos_in_stream is not None else "input"
    return RASPSyntaxError(f"unexpected {found}{hint}", error.line, error.column)


def _expected(error: UnexpectedInput) -> list[str]:
    """What the parser would have accepted, as text: `;` first (the usual omission), then
    the rest in a stable order, at most ten."""
    if isinstance(error, UnexpectedToken) and error.interactive_parser is not None:
        names = error.interactive_parser.accepts()  # exact, unlike LALR's merged lookaheads
    else:
        names = getattr(error, "expected", None) or getattr(error, "allowed", None) or set()
    texts = []
    for name in sorted(names):
        if name in _TERMINAL_TEXT:
            texts.append(_TERMINAL_TEXT[name])
            continue
        pattern = _PARSER.get_terminal(name).pattern if name != "$END" else None
        if pattern is not None and pattern.type == "str":
            texts.append(repr(pattern.value))
    unique = dict.fromkeys(t if t.startswith(("'", "a ")) else repr(t) for t in texts)
    return sorted(unique, key=lambda text: (text != "';'", text))[:10]


def load(path: str | Path, *, loads: bool = True) -> Program:
    """Parse a .rasp file."""
    return parse(Path(path).read_text(), loads=loads, file=path)


__all__ = [
    "IncompleteProgram",
    "Program",
    "RASPSyntaxError",
    "expression",
    "library_scope",
    "load",
    "parse",
    "run",
    "statements",
]
