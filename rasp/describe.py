"""RASP expressions as text in the language's own syntax (`rasp/parser.py`): a selector as
`select(indices, opp_index, ==)`, composed with `and`, `or` and `not`, and the operation a
compiled head computes as `reverse = aggregate(select(indices, opp_index, ==), tokens)`.

SOps appear by their labels (a name given in the program, else kind_digest), so the text is
as deterministic as the labels are; a predicate that is a Python function shows its name."""

from __future__ import annotations

from typing import Any

from rasp import ltp, rasp

SYMBOLS = {
    rasp.Comparison.EQ: "==",
    rasp.Comparison.NEQ: "!=",
    rasp.Comparison.LT: "<",
    rasp.Comparison.LEQ: "<=",
    rasp.Comparison.GT: ">",
    rasp.Comparison.GEQ: ">=",
    rasp.Comparison.TRUE: "True",
    rasp.Comparison.FALSE: "False",
}


def predicate_text(predicate: Any) -> str:
    """`==` for a comparison, a function's name (`<lambda>`) for any other predicate."""
    if isinstance(predicate, rasp.Comparison):
        return SYMBOLS[predicate]
    return getattr(predicate, "__name__", type(predicate).__name__)


def selector_text(selector: rasp.Selector) -> str:
    """`select(keys, queries, op)`, and `a and b`, `a or b`, `not a` around them."""
    match selector:
        case rasp.Select():
            keys, queries = selector.keys.label, selector.queries.label
            return f"select({keys}, {queries}, {predicate_text(selector.predicate)})"
        case ltp.SelectClosest():
            keys, queries = selector.keys.label, selector.queries.label
            return f"select_closest({keys}, {queries}, {predicate_text(selector.predicate)})"
        case rasp.SelectorOr():
            return f"{_operand(selector.fst, selector)} or {_operand(selector.snd, selector)}"
        case rasp.SelectorAnd():
            return f"{_operand(selector.fst, selector)} and {_operand(selector.snd, selector)}"
        case rasp.SelectorNot():
            return f"not {_operand(selector.inner, selector)}"
    return selector.label  # a ConstantSelector: no source form


def _operand(child: rasp.Selector, parent: rasp.Selector) -> str:
    """A child of `and`/`or`/`not` in parentheses unless it is a Select, a `not` (which binds
    tightest, as the parser reads it) or the same operator (`a and b and c` reads the same
    either way; `a or (b and c)` does not)."""
    text = selector_text(child)
    plain = isinstance(child, (rasp.Select, ltp.SelectClosest, rasp.SelectorNot)) or (
        type(child) is type(parent) and not isinstance(parent, rasp.SelectorNot)
    )
    return text if plain else f"({text})"


def operation_text(expr: rasp.Aggregate | rasp.SelectorWidth, label: str | None = None) -> str:
    """`label = aggregate(selector, sop)` or `label = selector_width(selector)`; a numerical
    aggregate is written `numerical aggregate(...)`, as in the language."""
    name = expr.label if label is None else label
    selector = selector_text(expr.selector)
    if isinstance(expr, rasp.SelectorWidth):
        return f"{name} = selector_width({selector})"
    if isinstance(expr, ltp.SumAggregate):
        return f"{name} = numerical aggregate_sum({selector}, {expr.sop.label})"
    # the textual language's default (0) goes unsaid; tracr's None is said
    unsaid = expr.default == 0 and not isinstance(expr.default, bool)
    default = "" if unsaid else f", {expr.default!r}"
    kind = "numerical " if rasp.is_numerical(expr) else ""
    return f"{name} = {kind}aggregate({selector}, {expr.sop.label}{default})"
