"""The textual RASP language of the paper (Weiss et al. 2021), parsed into the same expression
tree as the embedded DSL (`rasp.rasp`), so a parsed program runs in the interpreter and goes
through the compiler like any other.

    same = select(tokens, tokens, ==);
    hist = selector_width(same);
    reverse = aggregate(select(indices, length - indices - 1, ==), tokens);
    def frac(seq, tok) { return numerical aggregate(select(indices, indices, <=), seq == tok, 0); }
    balance = numerical (frac(tokens, "(") - frac(tokens, ")"));

Statements end with `;`: assignments, `def name(args) { ...; return expr; }`. Expressions:
`tokens`, `indices`, `length`; numbers, strings, True/False, lists; `select(keys, queries,
op)` with op one of == != < <= > >= True False; `aggregate(sel, sop[, default])`,
`selector_width(sel)`, `map(lambda x: expr, sop)`, `zip(lambda x, y: expr, a, b)`;
`numerical` / `categorical` before an expression; arithmetic, comparisons, `and`, `or`,
`not` (elementwise on SOps, combining selectors); `a if cond else b` (elementwise); calls of
`def`s and of library functions (`rasp.library`: hist, reverse, sort, ...). Lambda bodies use
the same operators on plain values, plus `%`, `//`, `abs`, `min`, `max`, `len`, `str`,
`int`, `round`, tuples `(a, b)` and indexing `x[0]`.

Errors are `RASPSyntaxError`s that give the line and column. Parsing is LALR(1), so its time
grows linearly with the program (Earley, which this grammar does not need, grew faster).
Constant expressions are folded as they are read (`"ab" * 3` is `"ababab"`); a folded value
may hold at most `MAX_CONSTANT_SIZE` items (`rasp.operators`), so a program cannot ask for
gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken

from rasp import library, rasp
from rasp.operators import bounded, checked
from workbench.errors import InputError

GRAMMAR = r"""
start: _stmt*
_stmt: assign | funcdef | expr ";"
assign: NAME "=" expr ";"
funcdef: "def" NAME "(" [NAME ("," NAME)*] ")" "{" body "}"
body: (assign | expr ";")* "return" expr ";"

?expr: cond
?cond: or_ ("if" or_ "else" cond)?
?or_: and_ ("or" and_)*
?and_: not_ ("and" not_)*
?not_: "not" not_ -> not_op
     | cmp
?cmp: sum (CMP sum)?
?sum: product (ADD product)*
?product: unary (MUL unary)*
?unary: "-" unary -> neg
      | ENCODING unary -> annotate
      | postfix
?postfix: atom ("[" expr "]")* -> index
?atom: NUMBER -> number
     | STRING -> string
     | "True" -> true
     | "False" -> false
     | "[" [expr ("," expr)*] "]" -> list
     | "(" expr "," [expr ("," expr)*] ")" -> tuple
     | "(" expr ")"
     | NAME "(" [arg ("," arg)*] ")" -> call
     | NAME -> name
?arg: expr | lambda_ | OP
lambda_: "lambda" NAME ("," NAME)* ":" expr

ENCODING.2: "numerical" | "categorical"
CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
OP.-1: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/" | "//" | "%"
NAME: /(?!(def|return|lambda|if|else|and|or|not|numerical|categorical|True|False)\b)[A-Za-z_][A-Za-z_0-9]*/
NUMBER: /\d+(\.\d+)?/
STRING: /"[^"\n]*"/ | /'[^'\n]*'/
COMMENT: /(#|--)[^\n]*/
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

COMPARISONS = {
    "==": rasp.Comparison.EQ,
    "!=": rasp.Comparison.NEQ,
    "<": rasp.Comparison.LT,
    "<=": rasp.Comparison.LEQ,
    ">": rasp.Comparison.GT,
    ">=": rasp.Comparison.GEQ,
    "True": rasp.Comparison.TRUE,
    "False": rasp.Comparison.FALSE,
}
VALUE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (abs, min, max, len, str, int, float, round, bool)
}
LIBRARY: dict[str, Callable[..., rasp.SOp]] = {
    "hist": lambda *a: library.make_hist() if not a else _hist_of(*a),
    "reverse": library.make_reverse,
    "sort": lambda vals, keys: library.make_sort_unique(vals, keys),
    "sort_unique": library.make_sort_unique,
    "frac_prevs": library.make_frac_prevs,
    "shift_by": library.shift_by,
    "detect_pattern": library.detect_pattern,
    "count": library.make_count,
    "double_hist": library.make_double_hist,
}


def _hist_of(sop: rasp.SOp) -> rasp.SOp:
    return rasp.SelectorWidth(rasp.Select(sop, sop, rasp.Comparison.EQ))


class RASPSyntaxError(InputError):
    """A program that does not parse or does not make sense, with its line and column."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line, self.column = line, column


@dataclass(frozen=True)
class Program:
    """A parsed program: every top-level name it assigned, and its output (the last
    assignment or expression)."""

    names: dict[str, Any]
    output: rasp.SOp


def parse(source: str) -> Program:
    try:
        tree = _PARSER.parse(source)
    except UnexpectedInput as error:
        raise _syntax_error(error, source) from None
    scope = _Scope(dict(_BUILTINS), None)
    last: Any = None
    for statement in tree.children:
        last = _Builder(scope).statement(statement)
    if not isinstance(last, rasp.SOp):
        raise RASPSyntaxError("the program computes no sequence: end it with a SOp", 1, 1)
    return Program({k: v for k, v in scope.names.items() if k not in _BUILTINS}, last)


def expression(text: str) -> Any:
    """The value of one expression, unnamed: a SOp, a selector or a plain value (`tokens`,
    `3`, `[1, 2]`, `"a"`, `tokens == "a"`). A `RASPSyntaxError` if `text` is not one."""
    source = f"_ = {text}\n;"  # the newline ends a trailing comment
    try:
        tree = _PARSER.parse(source)
    except UnexpectedInput as error:
        raise _syntax_error(error, source) from None
    first = tree.children[0] if len(tree.children) == 1 else None
    if not isinstance(first, Tree) or first.data != "assign":
        raise RASPSyntaxError(f"{text!r} is not one expression", 1, 1)
    return _Builder(_Scope(dict(_BUILTINS), None), top=False).expr(first.children[1])


def _syntax_error(error: UnexpectedInput, source: str) -> RASPSyntaxError:
    """One line: where, what was found, and what could have stood there instead."""
    expected = _expected(error)
    hint = f"; expected one of {', '.join(expected)}" if expected else ""
    ended = isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    )
    if ended:  # point just past the end
        lines = source.rstrip().split("\n")
        return RASPSyntaxError(f"the program ends early{hint}", len(lines), len(lines[-1]) + 1)
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


_BUILTINS: dict[str, Any] = {
    "tokens": rasp.tokens,
    "indices": rasp.indices,
    "length": rasp.length,
}


@dataclass
class _Function:
    name: str
    params: list[str]
    body: Tree
    scope: _Scope


class _Scope:
    def __init__(self, names: dict[str, Any], parent: _Scope | None) -> None:
        self.names, self.parent = names, parent

    def lookup(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        raise KeyError(name)


class _Builder:
    """Turns parse trees into RASP expressions (and lambda bodies into Python functions)."""

    def __init__(self, scope: _Scope, top: bool = True) -> None:
        self.scope, self.top = scope, top  # top level: assignments name their SOps

    def statement(self, tree: Tree | Token) -> Any:
        match tree:
            case Tree(data="assign"):
                name, value = tree.children
                result = self.expr(value)
                if self.top and isinstance(result, rasp.RASPExpr):
                    result = result.named(str(name))
                self.scope.names[str(name)] = result
                return result
            case Tree(data="funcdef"):
                name, *params, body = tree.children
                self.scope.names[str(name)] = _Function(
                    str(name), [str(p) for p in params if p is not None], body, self.scope
                )
                return None
        return self.expr(tree)

    def expr(self, tree: Tree | Token) -> Any:
        try:
            return self._expr(tree)
        except RASPSyntaxError:
            raise
        except Exception as error:  # a constant expression failed (1 / 0), a bad argument
            line, column = _where(tree)
            text = error.args[0] if isinstance(error, KeyError) and error.args else error
            message = str(text) or type(error).__name__
            raise RASPSyntaxError(message, line, column) from None

    def _expr(self, tree: Tree | Token) -> Any:
        if isinstance(tree, Token):
            if tree.type == "OP":
                return COMPARISONS[str(tree)]
            raise TypeError(f"unexpected {tree!r}")
        kids = tree.children
        match tree.data:
            case "number":
                text = str(kids[0])
                return float(text) if "." in text else int(text)
            case "string":
                return str(kids[0])[1:-1]
            case "true":
                return True
            case "false":
                return False
            case "list":
                return bounded([self.expr(k) for k in kids if k is not None], "this list")
            case "tuple":
                return bounded(tuple(self.expr(k) for k in kids if k is not None), "this tuple")
            case "name":
                return self._name(_token(kids[0]))
            case "neg":
                return _apply("-", 0, self.expr(kids[0]))
            case "not_op":
                value = self.expr(kids[0])
                if isinstance(value, rasp.Selector):
                    return ~value
                return ~value if isinstance(value, rasp.SOp) else (not value)
            case "annotate":
                encoding, inner = kids
                value = self.expr(inner)
                if not isinstance(value, rasp.SOp):
                    raise TypeError(f"{encoding} applies to a sequence, got {value!r}")
                wanted = rasp.Encoding(str(encoding))
                if rasp.get_encoding(value) is wanted:
                    return value
                # a named sequence seen with another encoding is another SOp: unnamed, so
                # that its label (a digest that includes the encoding) is its own
                return rasp.annotate(value, **{rasp.NAME: None, rasp.ENCODING: wanted})
            case "sum" | "product" | "cmp":
                value = self.expr(kids[0])
                for op, right in zip(kids[1::2], kids[2::2], strict=True):
                    value = _apply(str(op), value, self.expr(right))
                return value
            case "and_" | "or_":
                value = self.expr(kids[0])
                for right in kids[1:]:
                    value = _logic(tree.data, value, self.expr(right))
                return value
            case "cond":
                return _conditional(*(self.expr(k) for k in kids))
            case "index":
                value = self.expr(kids[0])
                for key in kids[1:]:
                    value = _apply("[]", value, self.expr(key))
                return value
            case "call":
                return self._call(_token(kids[0]), kids[1:])
            case "lambda_":
                raise TypeError("a lambda is an argument of map or zip")
        raise TypeError(f"unexpected {tree.data}")

    def _name(self, token: Token) -> Any:
        try:
            return self.scope.lookup(str(token))
        except KeyError:
            raise RASPSyntaxError(
                f"unknown name {str(token)!r}: assign it first", *_where(token)
            ) from None

    def _call(self, name: Token, args: list) -> Any:
        fn = str(name)
        match fn:
            case "select":
                keys, queries, op = self._args(fn, args, 3)
                if isinstance(op, bool):  # `True` and `False` read as values: the predicates
                    op = rasp.Comparison.TRUE if op else rasp.Comparison.FALSE
                if not isinstance(op, rasp.Comparison):
                    raise TypeError(
                        "select's third argument is a comparison: == != < <= > >= True False"
                    )
                return rasp.Select(keys, queries, op)
            case "aggregate":
                values = [self.expr(a) for a in args]
                if len(values) not in (2, 3):
                    raise TypeError(
                        f"aggregate takes (selector, sop[, default]), got {len(values)}"
                    )
                return rasp.Aggregate(*values)
            case "selector_width":
                (selector,) = self._args(fn, args, 1)
                return rasp.SelectorWidth(selector)
            case "map" | "zip":
                return self._map(fn, args)
        if fn in VALUE_FUNCTIONS:
            raise TypeError(f"{fn}(...) works on values inside a lambda, not on sequences")
        try:
            target = self.scope.lookup(fn)
        except KeyError:
            target = LIBRARY.get(fn)
        values = [self.expr(a) for a in args]
        if isinstance(target, _Function):
            return self._invoke(target, values, name)
        if target is None:
            known = ", ".join(sorted([*LIBRARY, "select", "aggregate", "selector_width"]))
            raise RASPSyntaxError(
                f"unknown function {fn!r}; define it with def, or use one of: {known}",
                *_where(name),
            )
        return target(*values)

    def _args(self, fn: str, args: list, n: int) -> list:
        if len(args) != n:
            raise TypeError(f"{fn} takes {n} arguments, got {len(args)}")
        return [self.expr(a) for a in args]

    def _invoke(self, function: _Function, values: list, name: Token) -> Any:
        if len(values) != len(function.params):
            raise RASPSyntaxError(
                f"{function.name} takes {len(function.params)} arguments, got {len(values)}",
                *_where(name),
            )
        scope = _Scope(dict(zip(function.params, values, strict=True)), function.scope)
        inner = _Builder(scope, top=False)
        *statements, result = function.body.children
        for statement in statements:
            inner.statement(statement)
        return inner.expr(result)

    def _map(self, fn: str, args: list) -> rasp.SOp:
        if not args or not isinstance(args[0], Tree) or args[0].data != "lambda_":
            raise TypeError(f"{fn}'s first argument is a lambda, e.g. {fn}(lambda x: x + 1, seq)")
        *params, body = args[0].children
        sops = [self.expr(a) for a in args[1:]]
        if len(params) != len(sops) or len(sops) not in (1, 2):
            raise TypeError(
                f"{fn} takes a lambda of one argument and one sequence, or of two and two; "
                f"got {len(params)} parameters and {len(sops)} sequences"
            )
        names = [str(p) for p in params]
        function = _lambda(names, body, _free_values(names, body, self.scope))
        if len(sops) == 1:
            return rasp.Map(function, sops[0])
        return rasp.SequenceMap(function, *sops)


def _lambda(params: list[str], body: Tree, free: dict[str, Any]) -> Callable[..., Any]:
    """A Python function evaluating the lambda body on plain values. It closes over the values
    of its free names, not over the scope: a SOp's label digests its function's closure, so
    `lambda x: x + c` with c = 1 and with c = 2 (two calls of one def) get different labels."""

    def function(*values: Any) -> Any:
        local = _Scope(dict(zip(params, values, strict=True)), _Scope(free, None))
        return _Values(local, top=False).expr(body)

    return function


def _free_values(params: list[str], body: Tree, scope: _Scope) -> dict[str, Any]:
    """The values of a lambda body's free names, which must be plain values, not sequences."""
    free: dict[str, Any] = {}
    for node in body.iter_subtrees_topdown():
        if node.data != "name":
            continue
        token = node.children[0]
        if str(token) in params:
            continue
        try:
            value = scope.lookup(str(token))
        except KeyError:
            raise RASPSyntaxError(
                f"unknown name {str(token)!r} in a lambda", *_where(token)
            ) from None
        if isinstance(value, (rasp.RASPExpr, _Function)):
            raise RASPSyntaxError(
                f"{token} is a sequence; a lambda body works on plain values",
                *_where(token),
            )
        free[str(token)] = value
    return free


class _Values(_Builder):
    """Lambda bodies: the same grammar on plain values, with value functions callable."""

    def _name(self, token: Token) -> Any:
        value = super()._name(token)
        if isinstance(value, rasp.RASPExpr):
            raise RASPSyntaxError(
                f"{token} is a sequence; a lambda body works on plain values",
                *_where(token),
            )
        return value

    def _call(self, name: Token, args: list) -> Any:
        fn = VALUE_FUNCTIONS.get(str(name))
        if fn is None:
            raise RASPSyntaxError(
                f"{name}(...) is not available inside a lambda; use one of: "
                + ", ".join(VALUE_FUNCTIONS),
                *_where(name),
            )
        return fn(*(self.expr(a) for a in args))


def _apply(op: str, left: Any, right: Any) -> Any:
    if op == "[]":
        if isinstance(left, rasp.SOp):
            return rasp.Map(lambda x: x[right], left)
        return left[right]
    if isinstance(left, rasp.Selector) or isinstance(right, rasp.Selector):
        raise TypeError(f"{op} does not apply to selectors; combine them with and, or, not")
    if op in ("+", "-") and all(_is_numerical_sop(x) for x in (left, right)):
        # the sum or difference of two numerical sequences is linear: one MLP computes it,
        # where a SequenceMap would need a lookup table over numbers (tracr does the same)
        return rasp.LinearSequenceMap(left, right, 1, 1 if op == "+" else -1)
    return _combine(checked(op), left, right)


def _is_numerical_sop(value: Any) -> bool:
    return isinstance(value, rasp.SOp) and rasp.is_numerical(value)


def _combine(f: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    """f elementwise: a SequenceMap of two sequences, a Map of one, or f of two values."""
    if isinstance(left, rasp.SOp) and isinstance(right, rasp.SOp):
        return rasp.SequenceMap(f, left, right)
    if isinstance(left, rasp.SOp):
        return rasp.Map(lambda x: f(x, right), left)
    if isinstance(right, rasp.SOp):
        return rasp.Map(lambda y: f(left, y), right)
    return f(left, right)


def _logic(kind: str, left: Any, right: Any) -> Any:
    both = kind == "and_"
    selectors = [isinstance(x, rasp.Selector) for x in (left, right)]
    if all(selectors):
        return left & right if both else left | right
    if any(selectors):
        raise TypeError("and/or combine two selectors or two sequences, not one of each")
    return _combine((lambda x, y: x and y) if both else (lambda x, y: x or y), left, right)


def _conditional(then: Any, condition: Any, otherwise: Any) -> Any:
    """`then if condition else otherwise`, elementwise when any part is a sequence."""
    parts = [then, condition, otherwise]
    if not any(isinstance(p, rasp.SOp) for p in parts):
        return then if condition else otherwise
    sops = [p if isinstance(p, rasp.SOp) else rasp.Full(p) for p in parts]
    pair = rasp.SequenceMap(lambda t, c: (t, c), sops[0], sops[1])
    return rasp.SequenceMap(lambda tc, o: tc[0] if tc[1] else o, pair, sops[2])


def _token(node: Tree | Token | None) -> Token:
    """A node the grammar makes a token (a name), as one."""
    if not isinstance(node, Token):
        raise TypeError(f"expected a token, got {node!r}")
    return node


def _where(tree: Tree | Token) -> tuple[int, int]:
    """The line and column of the first token of `tree` (trees carry no positions: keeping
    them cost lark 40% of its parse time)."""
    while isinstance(tree, Tree) and tree.children:
        tree = tree.children[0]
    if isinstance(tree, Token):
        return tree.line or 1, tree.column or 1
    return 1, 1


def load(path: str) -> Program:
    """Parse a .rasp file."""
    with open(path) as f:
        return parse(f.read())


__all__ = ["Program", "RASPSyntaxError", "expression", "load", "parse"]
