"""Stage 2: the set of values every SOp can take on inputs over `vocab` up to `max_seq_len`
(tracr's basis inference). Categorical SOps get one residual dimension per value; numerical
SOps feeding an MLP need the set to build an exact lookup. None is never a value: a
categorical None is the all-zero vector, a numerical one reads as 0."""

from __future__ import annotations

import itertools
from typing import Any

from rasp import ltp, rasp
from rasp.compiler.errors import UnsupportedError
from rasp.compiler.graph import ProgramGraph

MAX_VALUES = 20_000  # beyond this, a value set is too large to lay out or look up
# the most pairs of input values a SequenceMap is evaluated on (its value set, its table)
MAX_PAIRS = 1_000_000


def value_sets(graph: ProgramGraph, vocab: set[Any], max_seq_len: int) -> dict[str, set[Any]]:
    sets: dict[str, set[Any]] = {}
    for label in graph.sops():
        expr = graph.sop(label)
        try:
            values = _values(expr, sets, vocab, max_seq_len)
        except TypeError as error:  # a value that cannot go in a set
            raise _unhashable(label, error) from None
        values.discard(None)
        if len(values) > MAX_VALUES:
            raise UnsupportedError(
                f"{label} can take {len(values)} values on this vocabulary and length: too many "
                f"to compile (the limit is {MAX_VALUES}); shrink the vocabulary or max_seq_len"
            )
        sets[label] = values
    return sets


def _values(expr: rasp.SOp, sets: dict[str, set], vocab: set, max_len: int) -> set[Any]:
    match expr:
        case rasp.TokensType():
            return set(vocab)
        case rasp.IndicesType():
            return set(range(max_len))
        case rasp.Map():
            return _outputs(expr, [(x,) for x in sets[expr.inner.label]])
        case rasp.SequenceMap():
            fst, snd = sets[expr.fst.label], sets[expr.snd.label]
            if len(fst) * len(snd) > MAX_PAIRS:
                raise UnsupportedError(
                    f"{expr.label}: its inputs take {len(fst) * len(snd):,} pairs of values, over "
                    f"the limit of {MAX_PAIRS:,} (rasp.compiler.values.MAX_PAIRS); shrink the "
                    "vocabulary or max_seq_len"
                )
            return _outputs(expr, list(itertools.product(fst, snd)))
        case rasp.Full():
            return {expr.fill}
        case rasp.SelectorWidth():
            return set(range(max_len + 1))
        case ltp.SumAggregate():
            return _sums(expr, sets[expr.sop.label], max_len)
        case ltp.Readout():
            return set(expr.outputs)
        case rasp.Aggregate():
            inner = sets[expr.sop.label]
            if rasp.is_categorical(expr):
                return set(inner) | ({expr.default} if expr.default is not None else set())
            return _means(expr, inner, max_len) | {expr.default or 0}
    raise UnsupportedError(
        f"{expr.label}: {type(expr).__name__} cannot be compiled (it has no fixed value set); "
        "use Map, SequenceMap, Aggregate, SelectorWidth or Full"
    )


def _unhashable(label: str, error: TypeError) -> Exception:
    if "unhashable" not in str(error):
        return error
    return UnsupportedError(
        f"{label} takes values Python cannot hash ({error}): a compiled SOp's values are "
        "tokens, numbers, strings, booleans or tuples of them; make lists tuples"
    )


def _outputs(expr: rasp.Map | rasp.SequenceMap, inputs: list[tuple[Any, ...]]) -> set[Any]:
    """The function's values on `inputs`. An input it fails on is left out: it can only be
    a default no selection reaches (`aggregate`'s 0 fed to `+ "!"`), or the interpreter fails
    on it too and validation reports the input. A function that fails on every input is
    refused here."""
    out: set[Any] = set()
    failure: tuple[tuple[Any, ...], Exception] | None = None
    for args in inputs:
        try:
            out.add(expr.f(*args))
        except TypeError as error:
            if "unhashable" in str(error):
                raise _unhashable(expr.label, error) from None
            failure = failure or (args, error)
        except Exception as error:
            failure = failure or (args, error)
    if failure is not None and not out:
        args, error = failure
        raise UnsupportedError(
            f"{expr.label}: its function fails on {args!r}, a value its input can take "
            f"({type(error).__name__}: {error}); make it total on the input's value set"
        ) from error
    return out


def _means(expr: rasp.SOp, inner: set[Any], max_len: int) -> set[float]:
    """Every mean of 1..max_len values drawn from `inner` (a numerical aggregate's outputs)."""
    values = sorted({float(v) for v in inner})
    if set(values) <= {0.0, 1.0} or len(values) == 1:  # fractions k / n of the top value
        top = values[-1] if values else 0.0
        return {top * k / n for n in range(1, max_len + 1) for k in range(n + 1)} | set(values)
    out: set[float] = set()
    for n in range(1, max_len + 1):
        for bag in itertools.combinations_with_replacement(values, n):
            out.add(sum(bag) / n)
            if len(out) > MAX_VALUES:
                raise UnsupportedError(
                    f"{expr.label} averages {len(values)} distinct values over up to {max_len} "
                    "positions: too many possible means to compile; aggregate 0/1 values"
                )
    return out


def _sums(expr: rasp.SOp, inner: set[Any], max_len: int) -> set[Any]:
    """Every sum of 0..max_len values drawn from `inner` (a SumAggregate's outputs)."""
    out: set[Any] = {0}
    for _ in range(max_len):
        grown = set(out)
        for total in out:
            for v in inner:
                grown.add(total + v)
            if len(grown) > MAX_VALUES:  # stop before the set grows further
                raise UnsupportedError(
                    f"{expr.label} sums {len(inner)} distinct values over up to {max_len} "
                    f"positions: more than {MAX_VALUES:,} possible sums to compile"
                )
        if grown == out:
            break
        out = grown
    return out
