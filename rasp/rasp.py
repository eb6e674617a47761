"""The RASP language ("Thinking Like Transformers", Weiss et al. 2021) embedded in Python, with
tracr's primitives, names and semantics, so that a tracr program ports by changing its import
(`from tracr.rasp import rasp` -> `from rasp import rasp`).

A program is a tree of expressions. Sequence operations (SOps) map an input sequence to a
sequence of the same length: `tokens`, `indices`, `length`, `Map`, `SequenceMap`,
`LinearSequenceMap`, `Full`, `ConstantSOp`, `SelectorWidth`, `Aggregate`. Selectors map it to
a [query][key] matrix of booleans: `Select(keys, queries, predicate)` with the predicate called
as `predicate(key, query)`, their `&`, `|` and `~`, and `ConstantSelector`.

Labels are deterministic: an expression named with `.named(...)` keeps its name; any other is
labelled by its kind and a digest of its structure (kind, children's labels, and all that
decides what its function computes: see `rasp.fingerprint`), so a label never depends on what
else the process has built. Two expressions share a label when they compute the same thing.

SOps are categorical (one-hot in a compiled model, the default) or numerical (one dimension):
`numerical(sop)`, `categorical(sop)`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

from rasp import fingerprint as _fingerprints
from rasp.fingerprint import fingerprint

Value = Any  # a token, index, number, bool or None
SelectorValue = list[list[bool]]

NAME = "name"
ENCODING = "encoding"


class Encoding(enum.Enum):
    """How a SOp is laid out in a compiled model's residual stream."""

    CATEGORICAL = "categorical"  # one dimension per value (one-hot)
    NUMERICAL = "numerical"  # one dimension holding the value


class RASPExpr:
    """A RASP expression: its children, its annotations (name, encoding) and its label."""

    _kind = "expr"

    def __init__(self) -> None:
        self._annotations: dict[str, Any] = {}

    @property
    def children(self) -> Sequence[RASPExpr]:
        return ()

    @property
    def annotations(self) -> Mapping[str, Any]:
        return dict(self._annotations)

    @property
    def name(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The given name, else kind_digest of the structure (deterministic)."""
        given = self._annotations.get(NAME)
        if given is not None:
            return given
        cached = self.__dict__.get("_label")
        if cached is None:  # expressions never change after construction: hash once
            cached = self.__dict__["_label"] = f"{self._kind}_{self._digest()}"
        return cached

    def named(self, name: str) -> Self:
        return annotate(self, **{NAME: name})

    def annotated(self, **annotations: Any) -> Self:
        return annotate(self, **annotations)

    def copy(self) -> Self:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.pop("_label", None)  # annotations may change the label
        new._annotations = dict(self._annotations)
        return new

    def _structure(self) -> list[str]:
        """What identifies this expression apart from its name (see `_digest`)."""
        return [child.label for child in self.children]

    def _digest(self) -> str:
        parts = [self._kind, *self._structure()]
        encoding = self._annotations.get(ENCODING)
        if encoding is not None and encoding is not Encoding.CATEGORICAL:
            parts.append(encoding.value)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]

    def __call__(self, xs: Sequence[Value]):
        from rasp.interpreter import evaluate

        return evaluate(self, xs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label})"

    __hash__ = object.__hash__


_fingerprints.LABELLED = (RASPExpr,)
E = TypeVar("E", bound=RASPExpr)


def annotate(expr: E, **annotations: Any) -> E:
    """A copy of `expr` with these annotations added (replacing any with the same key)."""
    new = expr.copy()
    new._annotations.update(annotations)
    return new


# ----- sequence operations --------------------------------------------------------------


class SOp(RASPExpr):
    """A sequence operation. Comparisons and arithmetic with constants build `Map`s, and with
    other SOps `SequenceMap`s (tracr builds a `Map` for a comparison with another SOp too,
    which compares every value with the SOp object itself: silently wrong)."""

    _kind = "sop"

    def __lt__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x < y, self, other)

    def __le__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x <= y, self, other)

    def __eq__(self, other: SOp | Value) -> SOp:  # type: ignore[override]
        return _binary(lambda x, y: x == y, self, other)

    def __ne__(self, other: SOp | Value) -> SOp:  # type: ignore[override]
        return _binary(lambda x, y: x != y, self, other)

    def __gt__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x > y, self, other)

    def __ge__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x >= y, self, other)

    def __add__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x + y, self, other)

    def __radd__(self, other: Value) -> SOp:
        return Map(lambda x: other + x, self)

    def __sub__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x - y, self, other)

    def __rsub__(self, other: Value) -> SOp:
        return Map(lambda x: other - x, self)

    def __mul__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x * y, self, other)

    def __rmul__(self, other: Value) -> SOp:
        return Map(lambda x: other * x, self)

    def __truediv__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x / y, self, other)

    def __rtruediv__(self, other: Value) -> SOp:
        return Map(lambda x: other / x, self)

    def __invert__(self) -> SOp:
        return Map(lambda x: not x, self)

    def __and__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x and y, self, other)

    def __or__(self, other: SOp | Value) -> SOp:
        return _binary(lambda x, y: x or y, self, other)

    def __rand__(self, other: Value) -> SOp:
        return Map(lambda x: other and x, self)

    def __ror__(self, other: Value) -> SOp:
        return Map(lambda x: other or x, self)

    __hash__ = RASPExpr.__hash__


def _binary(f: Callable[[Value, Value], Value], sop: SOp, other: SOp | Value) -> SOp:
    if isinstance(other, SOp):
        return SequenceMap(f, sop, other)
    return Map(lambda x: f(x, other), sop)


class TokensType(SOp):
    """The input tokens."""

    _kind = "tokens"

    @property
    def label(self) -> str:
        return self._annotations.get(NAME, "tokens")


class IndicesType(SOp):
    """The position of each token: 0, 1, ..., length - 1."""

    _kind = "indices"

    @property
    def label(self) -> str:
        return self._annotations.get(NAME, "indices")


class LengthType(SOp):
    """The input's length at every position (compiled as a selector width)."""

    _kind = "length"

    @property
    def label(self) -> str:
        return self._annotations.get(NAME, "length")


tokens = TokensType()
indices = IndicesType()
length = LengthType()


class Map(SOp):
    """f applied to every element of `inner` (None stays None). With `simplify`, a Map of a
    Map becomes one Map of the composed function, as in tracr."""

    _kind = "map"

    def __init__(self, f: Callable[[Value], Value], inner: SOp, simplify: bool = True) -> None:
        super().__init__()
        _check_sop(inner, "Map", "inner")
        if not callable(f):
            raise TypeError(f"Map needs a function, got {f!r}")
        if simplify and isinstance(inner, Map) and NAME not in inner._annotations:
            g, inner = inner.f, inner.inner
            self.f: Callable[[Value], Value] = lambda x: f(g(x))
            self._parts = (f, g)
        else:
            self.f = f
            self._parts = (f,)
        self.inner = inner

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.inner,)

    def _structure(self) -> list[str]:
        return [self.inner.label, *map(fingerprint, self._parts)]


class SequenceMap(SOp):
    """f applied elementwise to two SOps (None if either is None)."""

    _kind = "sequence_map"

    def __init__(self, f: Callable[[Value, Value], Value], fst: SOp, snd: SOp) -> None:
        super().__init__()
        _check_sop(fst, "SequenceMap", "fst")
        _check_sop(snd, "SequenceMap", "snd")
        if not callable(f):
            raise TypeError(f"SequenceMap needs a function, got {f!r}")
        self.f, self.fst, self.snd = f, fst, snd

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.fst, self.snd)

    def _structure(self) -> list[str]:
        return [self.fst.label, self.snd.label, fingerprint(self.f)]


class LinearSequenceMap(SequenceMap):
    """fst_fac * fst + snd_fac * snd: compiles without a lookup table for numerical SOps."""

    _kind = "linear_sequence_map"

    def __init__(self, fst: SOp, snd: SOp, fst_fac: float, snd_fac: float) -> None:
        super().__init__(lambda x, y: fst_fac * x + snd_fac * y, fst, snd)
        self.fst_fac, self.snd_fac = fst_fac, snd_fac

    def _structure(self) -> list[str]:
        return [self.fst.label, self.snd.label, repr(self.fst_fac), repr(self.snd_fac)]


class Full(SOp):
    """The same value at every position."""

    _kind = "full"

    def __init__(self, fill: Value) -> None:
        super().__init__()
        self.fill = fill

    def _structure(self) -> list[str]:
        return [fingerprint(self.fill)]


class ConstantSOp(SOp):
    """A fixed sequence (its length must match the input's when `check_length`)."""

    _kind = "constant_sop"

    def __init__(self, value: Sequence[Value], check_length: bool = True) -> None:
        super().__init__()
        self.value, self.check_length = list(value), check_length

    def _structure(self) -> list[str]:
        return [fingerprint(self.value), str(self.check_length)]


def sop_not(sop: SOp) -> SOp:
    return Map(lambda x: not x, sop)


# ----- selectors --------------------------------------------------------------------------


class Comparison(enum.Enum):
    """Predicates of `Select`, called as predicate(key, query)."""

    EQ = "EQ"
    LT = "LT"
    LEQ = "LEQ"
    GT = "GT"
    GEQ = "GEQ"
    NEQ = "NEQ"
    TRUE = "TRUE"
    FALSE = "FALSE"

    def __call__(self, key: Value, query: Value) -> bool:
        if key is None:  # as tracr: an Aggregate that selected nothing has no value
            raise ValueError("a key is None: selectors compare defined values only")
        if query is None:
            raise ValueError("a query is None: selectors compare defined values only")
        return _COMPARISONS[self](key, query)


_COMPARISONS: dict[Comparison, Callable[[Value, Value], bool]] = {
    Comparison.EQ: lambda key, query: key == query,
    Comparison.LT: lambda key, query: key < query,
    Comparison.LEQ: lambda key, query: key <= query,
    Comparison.GT: lambda key, query: key > query,
    Comparison.GEQ: lambda key, query: key >= query,
    Comparison.NEQ: lambda key, query: key != query,
    Comparison.TRUE: lambda key, query: True,
    Comparison.FALSE: lambda key, query: False,
}


class Selector(RASPExpr):
    """A [query][key] boolean matrix over the input's positions."""

    _kind = "selector"

    def __and__(self, other: Selector) -> Selector:
        return SelectorAnd(self, other)

    def __or__(self, other: Selector) -> Selector:
        return SelectorOr(self, other)

    def __invert__(self) -> Selector:
        return SelectorNot(self)


class KeyQuerySelector(Selector):
    """A selector made by comparing keys with queries through `predicate(key, query)`:
    `Select`, and `ltp.SelectClosest`, which keeps one of the keys `Select` would."""

    def __init__(
        self, keys: SOp, queries: SOp, predicate: Comparison | Callable[[Value, Value], bool]
    ) -> None:
        super().__init__()
        _check_sop(keys, type(self).__name__, "keys")
        _check_sop(queries, type(self).__name__, "queries")
        self.keys, self.queries, self.predicate = keys, queries, predicate

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.keys, self.queries)

    def _structure(self) -> list[str]:
        return [self.keys.label, self.queries.label, fingerprint(self.predicate)]


class Select(KeyQuerySelector):
    """selected[q][k] = predicate(keys[k], queries[q])."""

    _kind = "select"


class ConstantSelector(Selector):
    _kind = "constant_selector"

    def __init__(self, value: SelectorValue, check_length: bool = True) -> None:
        super().__init__()
        self.value, self.check_length = [list(row) for row in value], check_length

    def _structure(self) -> list[str]:
        return [fingerprint(self.value)]


class SelectorCombination(Selector):
    """Two selectors combined position by position (`SelectorAnd`, `SelectorOr`)."""

    def __init__(self, fst: Selector, snd: Selector) -> None:
        super().__init__()
        self.fst, self.snd = _check_selector(fst), _check_selector(snd)

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.fst, self.snd)


class SelectorAnd(SelectorCombination):
    _kind = "selector_and"


class SelectorOr(SelectorCombination):  # not a SelectorAnd: a match on And must not take it
    _kind = "selector_or"


class SelectorNot(Selector):
    _kind = "selector_not"

    def __init__(self, inner: Selector) -> None:
        super().__init__()
        self.inner = _check_selector(inner)

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.inner,)


def selector_and(fst: Selector, snd: Selector) -> Selector:
    return SelectorAnd(fst, snd)


def selector_or(fst: Selector, snd: Selector) -> Selector:
    return SelectorOr(fst, snd)


def selector_not(inner: Selector) -> Selector:
    return SelectorNot(inner)


class SelectorWidth(SOp):
    """How many keys each query selects."""

    _kind = "selector_width"

    def __init__(self, selector: Selector) -> None:
        super().__init__()
        self.selector = _check_selector(selector)

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.selector,)


class Aggregate(SOp):
    """The mean of the selected values at each query: `default` (None) when nothing is
    selected, and a single selected value unchanged."""

    _kind = "aggregate"

    def __init__(self, selector: Selector, sop: SOp, default: Value = None) -> None:
        super().__init__()
        self.selector = _check_selector(selector)
        _check_sop(sop, "Aggregate", "sop")
        if default is not None and not isinstance(default, (str, float, bool, int)):
            raise TypeError(f"an Aggregate's default must be a plain value, got {default!r}")
        self.sop, self.default = sop, default

    @property
    def children(self) -> Sequence[RASPExpr]:
        return (self.selector, self.sop)

    def _structure(self) -> list[str]:
        return [self.selector.label, self.sop.label, fingerprint(self.default)]


def _check_sop(value: Any, where: str, field: str) -> None:
    if not isinstance(value, SOp):
        raise TypeError(f"{where}'s {field} must be a SOp, got {type(value).__name__}")


def _check_selector(value: Any) -> Selector:
    if not isinstance(value, Selector):
        raise TypeError(f"expected a Selector, got {type(value).__name__}")
    return value


# ----- encodings ----------------------------------------------------------------------------


def numerical(sop: SOp) -> SOp:
    return annotate(sop, **{ENCODING: Encoding.NUMERICAL})


def categorical(sop: SOp) -> SOp:
    return annotate(sop, **{ENCODING: Encoding.CATEGORICAL})


def get_encoding(expr: RASPExpr) -> Encoding:
    return expr._annotations.get(ENCODING, Encoding.CATEGORICAL)


def is_numerical(expr: RASPExpr) -> bool:
    return get_encoding(expr) is Encoding.NUMERICAL


def is_categorical(expr: RASPExpr) -> bool:
    return get_encoding(expr) is Encoding.CATEGORICAL


def evaluate(expr: RASPExpr, xs: Sequence[Value], causal: bool = False):
    """The value of `expr` on input `xs` (see `rasp.interpreter.evaluate`)."""
    from rasp.interpreter import evaluate as run

    return run(expr, xs, causal=causal)
