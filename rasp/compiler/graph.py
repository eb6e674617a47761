"""Stage 1: a program as a graph of its expressions, keyed by label, in topological order
(children before parents). `length` is replaced by the selector width that computes it, so
later stages see only primitives they compile."""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

from rasp import rasp
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
    stack = [program]
    while stack:
        expr = stack.pop()
        if isinstance(expr, rasp.LengthType):
            expr = length
        label = expr.label
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
        case rasp.Aggregate():
            _check_aggregate(expr, label)
            selector_terms(expr.selector, label)
        case rasp.SelectorWidth():
            selector_terms(expr.selector, label)


def _check_aggregate(expr: rasp.Aggregate, label: str) -> None:
    inner = expr.sop
    if rasp.is_numerical(expr) != rasp.is_numerical(inner):
        kind = "numerical" if rasp.is_numerical(expr) else "categorical"
        other = "numerical" if rasp.is_numerical(inner) else "categorical"
        raise UnsupportedError(
            f"{label}: a {kind} Aggregate of the {other} SOp {inner.label} cannot be "
            f"compiled; annotate both the same way (rasp.{kind}({inner.label}))"
        )
    allowed = (None, 0) if rasp.is_numerical(expr) else (None,)
    if expr.default not in allowed or isinstance(expr.default, bool):
        raise UnsupportedError(
            f"{label}: an Aggregate with default={expr.default!r} cannot be compiled: when "
            "nothing is selected a compiled head outputs nothing (None, or 0 for a numerical "
            "SOp); use default=None"
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
        case rasp.SelectorAnd() if not isinstance(selector, rasp.SelectorOr):
            return selector_terms(selector.fst, label) + selector_terms(selector.snd, label)
        case rasp.SelectorNot() if isinstance(selector.inner, rasp.Select):
            [(keys, queries, predicate)] = selector_terms(selector.inner, label)
            return [(keys, queries, _negated(predicate))]
    raise UnsupportedError(
        f"{label}: its selector {selector.label} ({type(selector).__name__}) cannot be compiled "
        "to one head: selectors compile as Select, the & of Selects, and ~Select; rewrite an "
        "| as one Select whose predicate is the or of both"
    )


def _negated(predicate):
    return lambda key, query: not predicate(key, query)
