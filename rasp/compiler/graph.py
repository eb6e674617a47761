"""Stage 1: a program as a graph of its expressions, keyed by label, in topological order
(children before parents). `length` is replaced by the selector width that computes it, so
later stages see only primitives they compile.

A head computes a conjunction of Selects (each adds to the score) or a ~Select. Any other
selector (an `|`, a `~` of an `&`) is rewritten here, as the RASP paper counts it: one head
whose keys and queries are tuples of the SOps it compares (one MLP zips them; the same zip
serves every head that compares the same SOps) and whose predicate is the selector's boolean
structure. The paper's sort, `select(k, k, <) | (select(k, k, ==) & select(i, i, <))`,
becomes one Select on (k, i) pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

from rasp import ltp, rasp
from rasp.compiler.errors import UnsupportedError


@dataclass(frozen=True)
class ProgramGraph:
    output: rasp.SOp
    exprs: dict[str, rasp.RASPExpr]  # label -> expression
    order: tuple[str, ...]  # topological: every expression after its children
    children: dict[str, tuple[str, ...]] = field(repr=False)

    def sops(self) -> list[str]:
        """The labels of every SOp, in topological order."""
        return [label for label in self.order if isinstance(self.exprs[label], rasp.SOp)]

    def sop(self, label: str) -> rasp.SOp:
        """The SOp labelled `label` (one of `sops()`)."""
        expr = self.exprs[label]
        if not isinstance(expr, rasp.SOp):
            raise KeyError(f"{label} is a {type(expr).__name__}, not a SOp")
        return expr

    def readers(self, label: str) -> list[str]:
        return [p for p in self.order if label in self.children[p]]


def program_graph(program: rasp.SOp, check: bool = True) -> ProgramGraph:
    """The graph; with `check`, refuse what the compiler cannot compile (`UnsupportedError`)."""
    if not isinstance(program, rasp.SOp):
        raise UnsupportedError(
            f"a program is a SOp (its output sequence), got {type(program).__name__}"
        )
    length = _length()
    exprs: dict[str, rasp.RASPExpr] = {}
    children: dict[str, tuple[str, ...]] = {}
    stack: list[rasp.RASPExpr] = [program]
    while stack:
        expr = stack.pop()
        if isinstance(expr, rasp.LengthType):
            expr = length
        label = expr.label
        if isinstance(expr, (rasp.Aggregate, rasp.SelectorWidth)):
            expr = _one_head(expr, label)
        if isinstance(expr, rasp.SequenceMap):
            expr = _categorical_inputs(expr, label)
        if isinstance(expr, ltp.Readout) and expr is not program:
            raise UnsupportedError(
                f"{label}: a Readout compiles only as the program's output (the model's "
                "unembedding reads it); make it the program, or use a SequenceMap inside"
            )
        known = exprs.get(label)
        if known is not None:
            if known is not expr and _identity(known) != _identity(expr):
                why = ""
                if _identity(known)[:2] == _identity(expr)[:2]:
                    why = " (the same SOp, once numerical and once categorical)"
                raise UnsupportedError(
                    f"two different expressions are both labelled {label!r}{why}: give them "
                    "different names with .named(...)"
                )
            continue
        if check:
            _check(expr, label)
        exprs[label] = expr
        kids = [length if isinstance(c, rasp.LengthType) else c for c in expr.children]
        children[label] = tuple(c.label for c in kids)
        stack.extend(kids)
    order = tuple(TopologicalSorter(children).static_order())
    output = program if not isinstance(program, rasp.LengthType) else length
    return ProgramGraph(output, exprs, order, children)


def _one_head(expr: rasp.Aggregate | rasp.SelectorWidth, label: str) -> rasp.SOp:
    """`expr` with a selector one head computes: itself when its selector is a conjunction
    of Selects or a ~Select, else the same operation on one Select over zipped SOps (same
    label, so the program's other expressions still name it)."""
    selector = expr.selector
    if isinstance(selector, ltp.SelectClosest):
        return _closest_head(expr, selector, label)
    if _conjunction(selector):
        return expr
    leaves = _selects(selector)
    if not leaves or any(rasp.is_numerical(s) for leaf in leaves for s in leaf.children):
        return expr  # a ConstantSelector, or numerical SOps: refused later, by name
    keys = _unique([leaf.keys for leaf in leaves])
    queries = _unique([leaf.queries for leaf in leaves])
    at = {
        role: {s.label: (i if len(sops) > 1 else None) for i, s in enumerate(sops)}
        for role, sops in (("keys", keys), ("queries", queries))
    }
    merged = rasp.Select(_zipped(keys), _zipped(queries), _predicate(selector, at))
    if isinstance(expr, ltp.SumAggregate):
        new: rasp.SOp = ltp.SumAggregate(merged, expr.sop)
    elif isinstance(expr, rasp.Aggregate):
        new = rasp.Aggregate(merged, expr.sop, expr.default)
    else:
        new = rasp.SelectorWidth(merged)
    return rasp.annotate(new, **{**expr.annotations, rasp.NAME: label})


def _categorical_inputs(expr: rasp.SequenceMap, label: str) -> rasp.SequenceMap:
    """A SequenceMap's lookup table reads one-hot inputs: a numerical input is read through a
    categorical copy (a staircase MLP, one layer earlier). A numerical LinearSequenceMap
    needs no table and stays as it is."""
    numerical = [rasp.is_numerical(s) for s in (expr.fst, expr.snd)]
    linear = isinstance(expr, rasp.LinearSequenceMap) and rasp.is_numerical(expr)
    if linear or not any(numerical):
        return expr
    fst, snd = (
        rasp.categorical(rasp.Map(_same, s, simplify=False)).named(f"categorical({s.label})")
        if number
        else s
        for s, number in zip((expr.fst, expr.snd), numerical, strict=True)
    )
    new = rasp.SequenceMap(expr.f, fst, snd)
    return rasp.annotate(new, **{**expr.annotations, rasp.NAME: label})


def _same(x: Any) -> Any:
    return x


def _closest_head(
    expr: rasp.Aggregate | rasp.SelectorWidth, selector: ltp.SelectClosest, label: str
) -> rasp.SOp:
    """A categorical Aggregate over a SelectClosest, with keys and queries zipped with
    `indices`: the head's scores depend on the match, the key's position and the query's
    position together (see `blocks`)."""
    if type(expr) is not rasp.Aggregate or rasp.is_numerical(expr):
        raise UnsupportedError(
            f"{label}: a SelectClosest selects one key per query; it compiles under a "
            "categorical Aggregate only (it copies that key's value)"
        )
    test = selector.predicate

    def on_values(key: tuple, query: tuple) -> bool:
        return test(key[0], query[0])

    merged = ltp.SelectClosest(
        _with_indices(selector.keys), _with_indices(selector.queries), on_values
    )
    new = rasp.Aggregate(merged, expr.sop, expr.default)
    return rasp.annotate(new, **{**expr.annotations, rasp.NAME: label})


def _with_indices(sop: rasp.SOp) -> rasp.SOp:
    """(value, index) pairs of `sop`: n pairs for `indices` itself, not n x n."""
    if isinstance(sop, rasp.IndicesType):
        return rasp.Map(_twice, sop).named(f"zip({sop.label},{sop.label})")
    return _zipped([sop, rasp.indices])


def _twice(x: Any) -> tuple:
    return (x, x)


def _conjunction(selector: rasp.Selector) -> bool:
    match selector:
        case rasp.Select():
            return True
        case rasp.SelectorAnd():
            return _conjunction(selector.fst) and _conjunction(selector.snd)
        case rasp.SelectorNot():
            return isinstance(selector.inner, rasp.Select)
    return False


def _selects(selector: rasp.Selector) -> list[rasp.Select]:
    """The Selects under `selector`, left to right ([] if it holds anything else)."""
    match selector:
        case rasp.Select():
            return [selector]
        case rasp.SelectorCombination():  # and, or
            fst, snd = _selects(selector.fst), _selects(selector.snd)
            return fst + snd if fst and snd else []
        case rasp.SelectorNot():
            return _selects(selector.inner)
    return []


def _unique(sops: list[rasp.SOp]) -> list[rasp.SOp]:
    """One SOp per label, in order of first appearance."""
    first: dict[str, rasp.SOp] = {}
    for sop in sops:
        first.setdefault(sop.label, sop)
    return list(first.values())


def _zipped(sops: list[rasp.SOp]) -> rasp.SOp:
    """One SOp, or the tuple of several (named after them, so that heads comparing the same
    SOps share it)."""
    if len(sops) == 1:
        return sops[0]
    zipped = rasp.SequenceMap(_pair, sops[0], sops[1])
    for sop in sops[2:]:
        zipped = rasp.SequenceMap(_extend, zipped, sop)
    return zipped.named(f"zip({','.join(s.label for s in sops)})")


def _pair(x: Any, y: Any) -> tuple:
    return (x, y)


def _extend(xs: tuple, y: Any) -> tuple:
    return (*xs, y)


def _predicate(selector: rasp.Selector, at: dict[str, dict[str, int | None]]):
    """The selector's boolean structure as one predicate on (key tuple, query tuple);
    `at["keys"][label]` is where SOp `label` sits in the key tuple (None: no tuple)."""
    match selector:
        case rasp.Select():
            test = selector.predicate
            k, q = at["keys"][selector.keys.label], at["queries"][selector.queries.label]

            def select(key, query):
                return test(key if k is None else key[k], query if q is None else query[q])

            return select
        case rasp.SelectorNot():
            inner = _predicate(selector.inner, at)
            return lambda key, query: not inner(key, query)
        case rasp.SelectorOr():
            fst, snd = _predicate(selector.fst, at), _predicate(selector.snd, at)
            return lambda key, query: fst(key, query) or snd(key, query)
        case rasp.SelectorAnd():
            fst, snd = _predicate(selector.fst, at), _predicate(selector.snd, at)
            return lambda key, query: fst(key, query) and snd(key, query)
    raise UnsupportedError(f"{selector.label}: {type(selector).__name__} has no compiled form")


def _length() -> rasp.SOp:
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
    return rasp.SelectorWidth(everything.named("all_true_selector")).named("length")


def _identity(expr: rasp.RASPExpr) -> tuple:
    encoding = rasp.get_encoding(expr) if isinstance(expr, rasp.SOp) else None
    return (type(expr), tuple(expr._structure()), encoding)


def _check(expr: rasp.RASPExpr, label: str) -> None:
    """Refuse, naming the node, what has no compiled form (before any other stage runs)."""
    match expr:
        case rasp.ConstantSOp() | rasp.ConstantSelector():
            raise UnsupportedError(
                f"{label}: a {type(expr).__name__} has no compiled form (its values are not "
                "computed from the input); build it from rasp.indices with a Map"
            )
        case rasp.TokensType() | rasp.IndicesType() if rasp.is_numerical(expr):
            raise UnsupportedError(
                f"numerical({label}): the compiler embeds {label} one-hot (categorical), as "
                f"tracr does; make a numerical copy with a Map instead: "
                f"rasp.numerical(rasp.Map(lambda x: x, rasp.{label}))"
            )
        case rasp.Aggregate():
            _check_aggregate(expr, label)
            if not isinstance(expr.selector, ltp.SelectClosest):  # one head of its own
                selector_terms(expr.selector, label)
        case rasp.SelectorWidth():
            selector_terms(expr.selector, label)


def _check_aggregate(expr: rasp.Aggregate, label: str) -> None:
    inner = expr.sop
    if isinstance(expr, ltp.SumAggregate) and not rasp.is_numerical(expr):
        raise UnsupportedError(
            f"{label}: a SumAggregate compiles as a numerical SOp of a numerical one; annotate "
            f"both rasp.numerical(...)"
        )
    if rasp.is_numerical(expr) != rasp.is_numerical(inner):
        kind = "numerical" if rasp.is_numerical(expr) else "categorical"
        other = "numerical" if rasp.is_numerical(inner) else "categorical"
        raise UnsupportedError(
            f"{label}: a {kind} Aggregate of the {other} SOp {inner.label} cannot be "
            f"compiled; annotate both the same way (rasp.{kind}({inner.label}))"
        )
    number = isinstance(expr.default, (int, float)) and not isinstance(expr.default, bool)
    if rasp.is_numerical(expr) and expr.default is not None and not number:
        raise UnsupportedError(
            f"{label}: a numerical Aggregate's default is a number, got {expr.default!r}"
        )


def selector_terms(selector: rasp.Selector, label: str) -> list[tuple[rasp.SOp, rasp.SOp, Any]]:
    """A selector as a conjunction of (keys, queries, predicate) terms."""
    match selector:
        case rasp.Select():
            for sop, role in ((selector.keys, "key"), (selector.queries, "query")):
                if rasp.is_numerical(sop):
                    raise UnsupportedError(
                        f"{label}: its selector uses the numerical SOp {sop.label} as a {role}; "
                        f"selectors compare categorical SOps: use rasp.categorical({sop.label})"
                    )
            return [(selector.keys, selector.queries, selector.predicate)]
        case rasp.SelectorAnd():
            return selector_terms(selector.fst, label) + selector_terms(selector.snd, label)
        case rasp.SelectorNot() if isinstance(selector.inner, rasp.Select):
            [(keys, queries, predicate)] = selector_terms(selector.inner, label)
            return [(keys, queries, _negated(predicate))]
    if _closest_inside(selector):
        raise UnsupportedError(
            f"{label}: a SelectClosest is a head's whole selector (it keeps one key per query); "
            "it cannot be combined with &, | or ~"
        )
    for leaf in _selects(selector):
        selector_terms(leaf, label)  # a numerical key or query: say which
    raise UnsupportedError(
        f"{label}: its selector {selector.label} ({type(selector).__name__}) cannot be compiled "
        "to one head: it combines something other than Selects (a ConstantSelector?); build "
        "selectors from Select, &, | and ~"
    )


def _closest_inside(selector: rasp.RASPExpr) -> bool:
    if isinstance(selector, ltp.SelectClosest):
        return True
    return any(_closest_inside(c) for c in selector.children if isinstance(c, rasp.Selector))


def _negated(predicate):
    return lambda key, query: not predicate(key, query)
