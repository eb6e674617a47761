"""The RASP interpreter: the value of any expression on any input, bidirectional or causal.

Values follow tracr's evaluator: Map and SequenceMap keep None as None; Aggregate takes the
mean of the selected values, gives `default` when nothing is selected and a single selected
value unchanged; SelectorWidth counts the selected keys. `rasp.ltp`'s SelectClosest keeps one
key per query, SumAggregate sums and Readout picks the highest-scoring output. With `causal=True` every selector
is masked to keys at or before the query, and `length` is the length of the prefix (what a
causal compiled model computes).
Each sub-expression is evaluated once per call, however often the program uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rasp import ltp, rasp


class EvaluationError(ValueError):
    """An expression cannot be evaluated on this input; the message names the expression."""


def evaluate(expr: rasp.RASPExpr, xs: Sequence[Any], causal: bool = False):
    """A list of values for a SOp, a [query][key] list of booleans for a selector."""
    if isinstance(xs, str):
        xs = list(xs)
    return _Run(list(xs), causal).value(expr)


def evaluate_all(exprs: Sequence[rasp.RASPExpr], xs: Sequence[Any], causal: bool = False) -> list:
    """The values of several expressions on one input (as `evaluate` gives each), every
    sub-expression evaluated once across them all: every SOp of a program in one pass."""
    run = _Run(list(xs), causal)
    return [run.value(expr) for expr in exprs]


class _Run:
    def __init__(self, xs: list[Any], causal: bool) -> None:
        self.xs, self.causal = xs, causal
        self.memo: dict[int, Any] = {}

    def value(self, expr: rasp.RASPExpr):
        key = id(expr)
        if key not in self.memo:
            self._fill(expr)
        return self.memo[key]

    def _fill(self, root: rasp.RASPExpr) -> None:
        """Memoise `root` and everything it reads, children first, with a stack rather than
        recursion: a program of thousands of statements is thousands of expressions deep."""
        stack: list[tuple[rasp.RASPExpr, bool]] = [(root, False)]
        while stack:
            expr, children_done = stack.pop()
            if id(expr) in self.memo:
                continue
            if not children_done:
                stack.append((expr, True))
                stack.extend((child, False) for child in expr.children)
                continue
            self.memo[id(expr)] = self._guarded(expr)

    def _guarded(self, expr: rasp.RASPExpr):
        """The value of `expr` (its children are memoised), or an error that names it."""
        try:
            return self._compute(expr)
        except EvaluationError:
            raise
        except Exception as error:  # a user function failed: say which expression
            raise EvaluationError(
                f"evaluating {expr.label} on {self.xs!r} failed: {type(error).__name__}: {error}"
            ) from error

    def _compute(self, expr: rasp.RASPExpr):
        n = len(self.xs)
        match expr:
            case rasp.TokensType():
                return list(self.xs)
            case rasp.IndicesType():
                return list(range(n))
            case rasp.LengthType():
                # the width of a select-everything selector (how it compiles), so causally
                # the length of the prefix: a causal model cannot see the rest
                return list(range(1, n + 1)) if self.causal else [n] * n
            case rasp.Map():
                return [None if x is None else expr.f(x) for x in self.value(expr.inner)]
            case rasp.SequenceMap():
                pairs = zip(self.value(expr.fst), self.value(expr.snd), strict=True)
                return [None if x is None or y is None else expr.f(x, y) for x, y in pairs]
            case rasp.Full():
                return [expr.fill] * n
            case rasp.ConstantSOp():
                if expr.check_length and len(expr.value) != n:
                    raise EvaluationError(
                        f"{expr.label} holds {len(expr.value)} values, the input has {n}"
                    )
                return list(expr.value)
            case rasp.SelectorWidth():
                return [sum(row) for row in self.value(expr.selector)]
            case ltp.SumAggregate():
                rows, values = self.value(expr.selector), self.value(expr.sop)
                return [sum(v for s, v in zip(row, values, strict=True) if s) for row in rows]
            case rasp.Aggregate():
                selected = self.value(expr.selector)
                values = self.value(expr.sop)
                return [
                    _mean([v for s, v in zip(row, values, strict=True) if s], expr.default, expr)
                    for row in selected
                ]
            case rasp.Select():
                keys, queries = self.value(expr.keys), self.value(expr.queries)
                out = [[bool(expr.predicate(k, q)) for k in keys] for q in queries]
                return self._mask(out)
            case ltp.SelectClosest():
                keys, queries = self.value(expr.keys), self.value(expr.queries)
                out = [[bool(expr.predicate(k, q)) for k in keys] for q in queries]
                return ltp.closest(self._mask(out))
            case ltp.Readout():
                return expr.decide([self.value(sop) for sop in expr.sops])
            case rasp.ConstantSelector():
                if expr.check_length and len(expr.value) != n:
                    raise EvaluationError(
                        f"{expr.label} is {len(expr.value)} x {len(expr.value)}, the input has {n}"
                    )
                return self._mask([list(row) for row in expr.value])
            case rasp.SelectorOr():
                a, b = self.value(expr.fst), self.value(expr.snd)
                return [
                    [x or y for x, y in zip(r, s, strict=True)] for r, s in zip(a, b, strict=True)
                ]
            case rasp.SelectorAnd():
                a, b = self.value(expr.fst), self.value(expr.snd)
                return [
                    [x and y for x, y in zip(r, s, strict=True)] for r, s in zip(a, b, strict=True)
                ]
            case rasp.SelectorNot():
                return self._mask([[not x for x in row] for row in self.value(expr.inner)])
        raise EvaluationError(f"cannot evaluate {expr!r}: unknown kind of expression")

    def _mask(self, selected: list[list[bool]]) -> list[list[bool]]:
        if not self.causal:
            return selected
        return [[s and k <= q for k, s in enumerate(row)] for q, row in enumerate(selected)]


def _mean(values: list[Any], default: Any, expr: rasp.RASPExpr) -> Any:
    if not values:
        return default
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, (int, float, bool)) for v in values):
        return sum(values) / len(values)
    raise EvaluationError(
        f"{expr.label} averages non-numbers {values!r}: a categorical aggregate must select at "
        "most one value per query"
    )
