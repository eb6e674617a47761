"""The semantics of the textual RASP language (`rasp.parser` reads the text): what each
construct of a parse tree builds, following the official interpreter (tech-srl/RASP, Weiss et
al. 2021) wherever the two could differ.

Values are atoms (int, float, str, bool), lists, dicts, sequences (`rasp.SOp`), selectors
(`rasp.Selector`) and functions (`def`). An operation on a sequence builds a sequence
elementwise; an operation on atoms is done at once (`"ab" * 3` is `"ababab"`), within the size
limit of `rasp.operators`. The choices where tech-srl's language and tracr's differ:

- `aggregate(s, seq)` gives 0 where `s` selects nothing (tracr: None); an atom as `seq` or as
  an argument of `select` is a constant sequence (`select(indices, 0, ==)`, `aggregate(s, 1)`).
- `seq[i]` is the value at position i, at every position (`seq[-1]` counts from the end);
  a list, string or dict indexed by a sequence is looked up elementwise.
- `and`, `or` and `not` on sequences give booleans (`bool(a) and bool(b)`), on selectors
  combine them, and on atoms are Python's.
- `x if c else y` with an atom `c` evaluates only the branch it takes (loops over atoms stop);
  with a sequence `c` it is elementwise.
- `x in xs` of a sequence and a list is elementwise; of an atom and a sequence, whether the
  atom occurs anywhere (at every position).
- `indicator(x)` is 1 where x holds, else 0; `round(x)` is Python's (halves to even).

Every function call gets a nested scope; `for` loops and comprehensions run over lists and
dicts of atoms. Names starting with `_` stay private to the file that `load`s them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lark import Token, Tree

from rasp import operations as ops
from rasp import rasp
from rasp.operations import ATOMS, LanguageError, Primitive
from rasp.operators import bounded, bounded_size, size

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
# functions on plain values inside a `map`/`zip` lambda (an extension: tech-srl has none)
VALUE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (abs, min, max, len, str, int, float, round, bool)
}
# names a program cannot assign: tech-srl's keywords and built-in constants
RESERVED = {"if", "else", "not", "and", "or", "out", "def", "return", "range", "for", "in"}
RESERVED |= {"zip", "len", "get", "tokens_asis", "tokens_str", "tokens_int", "tokens_bool"}
RESERVED |= {"tokens_float", "indices", "True", "False"}
RESERVED = frozenset(RESERVED)
MAX_APPLIED = 1_000  # the longest input a sequence is applied to (its selectors are n x n)


class PlacedError(LanguageError):
    """An error at the innermost construct it arose in: its line and column, and the
    error itself (`original`)."""

    def __init__(
        self, message: str, line: int, column: int, original: Exception | None = None
    ) -> None:
        super().__init__(message)
        self.line, self.column, self.original = line, column, original


class UnknownName(LanguageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown name {name!r}: assign it first")
        self.name = name


class UnknownFunction(UnknownName):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.args = (
            f"unknown function {name!r}; define it with def, or use one of: {', '.join(known)}",
        )


class ReservedName(LanguageError):
    def __init__(self, name: str) -> None:
        super().__init__(f"cannot assign the reserved name {name!r}")
        self.name = name


class LoadRequest(Exception):
    """Raised by `load` where loading files is not allowed."""


@dataclass(frozen=True)
class Applied:
    """A sequence or selector applied to an input (`reverse("abc")`): its values there (a
    selector's as rows of keys per query)."""

    expr: rasp.RASPExpr
    input: list[Any]
    values: list[Any]


def _token_sop(name: str, convert: Callable[[Any], Any]) -> rasp.SOp:
    return rasp.Map(convert, rasp.tokens, simplify=False).named(name)


def builtins() -> dict[str, Any]:
    """The names every program starts with (below the library): the input as given
    (`tokens`, `tokens_asis`) and converted, `indices`, True and False."""
    return {
        "tokens": rasp.tokens,
        "tokens_asis": rasp.tokens,
        "tokens_str": _token_sop("tokens_str", str),
        "tokens_int": _token_sop("tokens_int", int),
        "tokens_float": _token_sop("tokens_float", float),
        "tokens_bool": _token_sop("tokens_bool", bool),
        "indices": rasp.indices,
        "True": True,
        "False": False,
    }


@dataclass
class Function:
    """A `def`: its body runs in a new scope nested in the one it was defined in."""

    name: str
    params: list[str]
    body: Tree
    scope: Scope
    creator: str = "console"  # where it was defined: a loaded file's name, or the console

    def __repr__(self) -> str:
        return f"function {self.name}({', '.join(self.params)})"


class Scope:
    """Names and their values, nested in a parent scope. `reserved`: names this scope may
    not assign (the REPL's console adds the library's); `file`: the file it runs, if any
    (for `load` relative to it)."""

    def __init__(
        self,
        names: dict[str, Any],
        parent: Scope | None,
        *,
        file: Path | None = None,
        reserved: frozenset[str] = RESERVED,
    ) -> None:
        self.names, self.parent, self.reserved = names, parent, reserved
        self.file = file if file is not None or parent is None else parent.file

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        raise UnknownName(name)

    def assign(self, name: str, value: Any) -> None:
        if name in self.reserved:
            raise ReservedName(name)
        self.names[name] = value


Loader = Callable[[str, "Scope"], dict[str, Any]]


class Naming(Protocol):
    """Display names kept beside the values (the REPL's `DisplayNames`)."""

    def name(self, value: Any, name: str) -> None: ...

    def describe(self, value: Any, cap: int | None = None) -> str: ...


def find_file(name: str, cwd: Path, scope: Scope) -> Path:
    """The file `load "name";` reads: name.rasp in `cwd`, else beside the file loading it."""
    candidates = [cwd / f"{name}.rasp"]
    if scope.file is not None:
        candidates.append(scope.file.parent / f"{name}.rasp")
    for path in candidates:
        if path.is_file():
            return path
    raise LanguageError(f"could not find file: {name}.rasp")


class Builder:
    """Turns parse trees into values: sequences, selectors, atoms, lists, dicts, functions.
    `top`: assignments here name their sequences (labels a program shows). `loader` reads
    a `load`ed file's public names (None: `load` is refused)."""

    def __init__(
        self,
        scope: Scope,
        *,
        top: bool = True,
        loader: Loader | None = None,
        names: Naming | None = None,
        creator: str = "console",
    ) -> None:
        self.scope, self.top, self.loader, self.names = scope, top, loader, names
        self.creator = creator
        # labels given at the top level so far (the built-in sequences' are taken)
        self.labels: set[str] = {v.label for v in builtins().values() if _is_expr(v)}

    def nested(self, scope: Scope) -> Builder:
        return Builder(scope, top=False, loader=self.loader, names=self.names, creator=self.creator)

    # ----- statements ----------------------------------------------------------------------
    def statement(self, tree: Tree | Token) -> Any:
        """Run one statement; the value of an expression statement or assignment, else
        None."""
        match tree:
            case Tree(data="assign"):
                names, values = tree.children
                return self._assign(_names(names), self.exprs(values))
            case Tree(data="funcdef"):
                name, *params, body = tree.children
                plist = _names(params[0]) if params and params[0] is not None else []
                function = Function(str(name), plist, body, self.scope, self.creator)
                self.scope.assign(str(name), function)
                return None
            case Tree(data="forloop"):
                names, iterable, *body = tree.children
                for item in _iterable(self.expr(iterable), "a for loop"):
                    self._bind(_names(names), item, self.scope)
                    for statement in body:
                        self.statement(statement)
                return None
            case Tree(data="load"):
                if self.loader is None:
                    raise LoadRequest
                for name, value in self.loader(_string(tree.children[0]), self.scope).items():
                    self.scope.assign(name, value)
                return None
            case Tree(data="draw"):
                return self.expr(tree.children[0])
            case Tree(data=("set_example" | "show_example" | "examples" | "full_seq" | "exit")):
                return None
        return self.expr(tree)

    def _assign(self, names: list[str], values: list[Any]) -> Any:
        value: Any = values[0] if len(values) == 1 else values
        if len(names) == 1:
            self.scope.assign(names[0], self._named(names[0], value))
            return self.scope.names[names[0]]
        for name, item in zip(names, unpacked(value, len(names)), strict=True):
            self.scope.assign(name, self._named(name, item))
        return None

    def _named(self, name: str, value: Any) -> Any:
        """`value` as `name` holds it: at the top level a sequence or selector takes the
        name as its label, or `name_2`, `name_3`, ... when an earlier one has it
        (`x = x + 1;`: both stay in the program, each with a label of its own)."""
        if self.top and isinstance(value, rasp.RASPExpr):
            label, n = name, 1
            while label in self.labels:
                n += 1
                label = f"{name}_{n}"
            self.labels.add(label)
            value = value.named(label)
        if self.names is not None and isinstance(value, rasp.RASPExpr):
            self.names.name(value, name)
        return value

    def _bind(self, names: list[str], item: Any, scope: Scope) -> None:
        """A loop's names take `item` (or its elements, one per name)."""
        for name, value in zip(names, unpacked(item, len(names)), strict=True):
            scope.assign(name, value)

    # ----- expressions ---------------------------------------------------------------------
    def exprs(self, tree: Tree) -> list[Any]:
        return [self.expr(child) for child in tree.children]

    def expr(self, tree: Tree | Token) -> Any:
        try:
            return self._expr(tree)
        except (PlacedError, LoadRequest):
            raise
        except Exception as error:  # a constant expression failed (1 / 0), a bad argument
            message = str(error) or type(error).__name__
            raise PlacedError(message, *where(tree), original=error) from None

    def _expr(self, tree: Tree | Token) -> Any:
        if isinstance(tree, Token):
            if tree.type == "OP":
                return COMPARISONS[str(tree)]
            raise LanguageError(f"unexpected {tree!r}")
        kids = tree.children
        match tree.data:
            case "number":
                text = str(kids[0])
                return float(text) if "." in text else int(text)
            case "string":
                return _string(kids[0])
            case "name":
                return self._name(str(kids[0]))
            case "list":
                return bounded([self.expr(k) for k in kids if k is not None], "this list")
            case "tuple":
                return bounded(tuple(self.expr(k) for k in kids if k is not None), "this tuple")
            case "dict":
                return {self._key(p.children[0]): self.expr(p.children[1]) for p in kids if p}
            case "listcomp" | "dictcomp":
                return self._comprehension(tree)
            case "not_op":
                return ops.negation(self.expr(kids[0]))
            case "sign":
                return ops.sign(str(kids[0]), self.expr(kids[1]))
            case "annotate":
                return ops.annotated(str(kids[0]), self.expr(kids[1]))
            case "binary":
                return ops.apply(str(kids[1]), self.expr(kids[0]), self.expr(kids[2]))
            case "logic":
                return ops.logic(str(kids[1]), self.expr(kids[0]), self.expr(kids[2]))
            case "cond":
                return self._conditional(*kids)
            case "contains":
                return ops.contains(self.expr(kids[0]), self.expr(kids[1]))
            case "index":
                return ops.index(self.expr(kids[0]), self.expr(kids[1]))
            case "select":
                return ops.select(*(self.expr(k) for k in kids[1:]))
            case "call":
                return self._call(kids[0], kids[1:])
            case "lambda_":
                raise LanguageError("a lambda is an argument of map or zip")
        raise LanguageError(f"unexpected {tree.data}")

    def _name(self, name: str) -> Any:
        return self.scope.lookup(name)

    def _key(self, tree: Tree) -> Any:
        key = self.expr(tree)
        if not isinstance(key, ATOMS):
            raise LanguageError(f"a dict's keys are atoms, got {ops.describe(key)}")
        return key

    def _comprehension(self, tree: Tree) -> Any:
        *parts, names, iterable = tree.children
        items = _iterable(self.expr(iterable), "a comprehension")
        results: list[Any] = []
        built: dict[Any, Any] = {}
        total = 0  # the size so far: checked as it grows, not once it is built
        for item in items:
            inner = self.nested(Scope({}, self.scope))
            inner._bind(_names(names), item, inner.scope)
            if tree.data == "listcomp":
                results.append(value := inner.expr(parts[0]))
                total += 1 + size(value)
            else:
                key, value = inner._key(parts[0]), inner.expr(parts[1])
                built[key] = value
                total += 1 + size(key) + size(value)
            bounded_size(total, "this comprehension")
        return results if tree.data == "listcomp" else built

    def _conditional(self, then: Tree, condition: Tree, otherwise: Tree) -> Any:
        test = self.expr(condition)
        if isinstance(test, rasp.Selector):
            raise LanguageError("a condition is a sequence or an atom, not a selector")
        if not isinstance(test, rasp.SOp):  # lazy: only the branch taken runs
            return self.expr(then) if test else self.expr(otherwise)
        parts = [ops.sequence(self.expr(then)), test, ops.sequence(self.expr(otherwise))]
        pair = rasp.SequenceMap(ops.pair, parts[0], parts[1])
        return rasp.SequenceMap(ops.choose, pair, parts[2])

    def _call(self, callee: Tree | Token, args: list) -> Any:
        name = _name_of(callee)
        if name in ("map", "zip") and args and _is_lambda(args[0]):
            return self._map(name, args)
        if name is not None and name in ops.BUILTIN_CALLS and not self._defined(name):
            return ops.BUILTIN_CALLS[name](*(self.expr(a) for a in args))
        if name is not None and not self._known(name):
            raise UnknownFunction(
                name, sorted({*ops.BUILTIN_CALLS, "map", "zip", *_functions(self.scope)})
            )
        target = self.expr(callee)
        values = [self.expr(a) for a in args]
        if isinstance(target, Function):
            return self.invoke(target, values)
        if isinstance(target, Primitive):
            return target.call(*values)
        if isinstance(target, rasp.RASPExpr):
            if len(values) != 1 or not isinstance(values[0], (str, list)) or not values[0]:
                raise LanguageError(
                    "a sequence or selector applies to one input: a non-empty string or list"
                )
            example = list(values[0])
            if len(example) > MAX_APPLIED:
                raise LanguageError(
                    f"an input of {len(example):,} tokens: a sequence applies to at most "
                    f"{MAX_APPLIED:,} (rasp.language.MAX_APPLIED)"
                )
            return Applied(target, example, rasp.evaluate(target, example))
        raise LanguageError(f"{ops.describe(target)} is not a function")

    def _known(self, name: str) -> bool:
        try:
            self.scope.lookup(name)
        except LanguageError:
            return False
        return True

    def _defined(self, name: str) -> bool:
        """Whether the program defined `name` itself (a def shadows a built-in call)."""
        try:
            return isinstance(self.scope.lookup(name), Function)
        except LanguageError:
            return False

    def invoke(self, function: Function, values: list[Any]) -> Any:
        if len(values) != len(function.params):
            raise LanguageError(
                f"{function.name} takes {len(function.params)} arguments, got {len(values)}"
            )
        scope = Scope(dict(zip(function.params, values, strict=True)), function.scope)
        inner = self.nested(scope)
        *statements, result = function.body.children
        for statement in statements:
            inner.statement(statement)
        returned = inner.exprs(result)
        value = returned[0] if len(returned) == 1 else returned
        if self.names is not None and isinstance(value, rasp.RASPExpr):
            args = " , ".join(self.names.describe(v, cap=20) for v in values)
            self.names.name(value, f"{function.name}({args})")
        return value

    def _map(self, fn: str, args: list) -> rasp.SOp:
        *params, body = args[0].children
        sops = [self.expr(a) for a in args[1:]]
        if len(params) != len(sops) or len(sops) not in (1, 2):
            raise LanguageError(
                f"{fn} takes a lambda of one argument and one sequence, or of two and two; "
                f"got {len(params)} parameters and {len(sops)} sequences"
            )
        for sop in sops:
            if not isinstance(sop, rasp.SOp):
                raise LanguageError(f"{fn} maps over sequences, got {ops.describe(sop)}")
        names = [str(p) for p in params]
        function = _lambda(names, body, _free_values(names, body, self.scope))
        if len(sops) == 1:
            return rasp.Map(function, sops[0])
        return rasp.SequenceMap(function, *sops)


# ----- lambdas (map and zip) -------------------------------------------------------------


def _lambda(params: list[str], body: Tree, free: dict[str, Any]) -> Callable[..., Any]:
    """A Python function evaluating the lambda body on plain values. It closes over the values
    of its free names, not over the scope: a SOp's label digests its function's closure, so
    `lambda x: x + c` with c = 1 and with c = 2 (two calls of one def) get different labels."""

    def function(*values: Any) -> Any:
        local = Scope(dict(zip(params, values, strict=True)), Scope(dict(free), None))
        return Values(local, top=False).expr(body)

    return function


def _free_values(params: list[str], body: Tree, scope: Scope) -> dict[str, Any]:
    """The values of a lambda body's free names, which must be plain values, not sequences."""
    free: dict[str, Any] = {}
    called = {id(node.children[0]) for node in body.iter_subtrees() if node.data == "call"}
    for node in body.iter_subtrees_topdown():
        if node.data != "name":
            continue
        name = str(node.children[0])
        if name in params or (id(node) in called and name in VALUE_FUNCTIONS):
            continue  # a parameter, or a value function called (max, min, ...)
        try:
            value = scope.lookup(name)
        except LanguageError:
            if name in VALUE_FUNCTIONS:
                continue
            raise PlacedError(f"unknown name {name!r} in a lambda", *where(node)) from None
        if isinstance(value, (rasp.RASPExpr, Function, Primitive)):
            what = "a sequence" if isinstance(value, rasp.RASPExpr) else "a function"
            raise PlacedError(
                f"{name} is {what}; a lambda body works on plain values", *where(node)
            )
        free[name] = value
    return free


class Values(Builder):
    """Lambda bodies: the same grammar on plain values, with value functions callable."""

    def _name(self, name: str) -> Any:
        value = super()._name(name)
        if isinstance(value, rasp.RASPExpr):
            raise LanguageError(f"{name} is a sequence; a lambda body works on plain values")
        return value

    def _call(self, callee: Tree | Token, args: list) -> Any:
        name = _name_of(callee) or ""
        fn = VALUE_FUNCTIONS.get(name)
        if fn is None:
            raise LanguageError(
                f"{name or 'this'}(...) is not available inside a lambda; use one of: "
                + ", ".join(VALUE_FUNCTIONS)
            )
        return fn(*(self.expr(a) for a in args))


# ----- helpers ---------------------------------------------------------------------------


def _functions(scope: Scope | None) -> set[str]:
    """The names of every function visible from `scope`."""
    found: set[str] = set()
    while scope is not None:
        found |= {n for n, v in scope.names.items() if isinstance(v, (Function, Primitive))}
        scope = scope.parent
    return found


def _is_expr(value: Any) -> bool:
    return isinstance(value, rasp.RASPExpr)


def unpacked(value: Any, count: int) -> list[Any]:
    """`value` as `count` values: itself for one, else its elements (a list, tuple or
    string of that length), as the official interpreter unpacks."""
    if count == 1:
        return [value]
    if not isinstance(value, (list, tuple, str)) or len(value) != count:
        got = len(value) if isinstance(value, (list, tuple, str)) else 1
        raise LanguageError(f"expected {count} values, but got: {got}")
    return list(value)


def _names(tree: Tree) -> list[str]:
    return [str(token) for token in tree.children]


def _string(token: Tree | Token) -> str:
    """A string literal's text, without its quotes."""
    return str(token)[1:-1]


def _name_of(tree: Tree | Token) -> str | None:
    """The name `tree` is, if it is a bare name."""
    if isinstance(tree, Tree) and tree.data == "name":
        return str(tree.children[0])
    return None


def _is_lambda(tree: Tree | Token) -> bool:
    return isinstance(tree, Tree) and tree.data == "lambda_"


def where(tree: Tree | Token) -> tuple[int, int]:
    """The line and column of the first token of `tree` (trees carry no positions: keeping
    them cost lark 40% of its parse time)."""
    while isinstance(tree, Tree) and tree.children:
        tree = next((c for c in tree.children if c is not None), tree.children[0])
    if isinstance(tree, Token):
        return tree.line or 1, tree.column or 1
    return 1, 1


def _iterable(value: Any, what: str) -> Iterable[Any]:
    if not isinstance(value, (list, dict)):
        raise LanguageError(f"{what} runs over a list or a dict, got {ops.describe(value)}")
    return list(value)
