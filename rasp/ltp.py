"""The three primitives Transformer Programs add to RASP (Friedman, Wettig & Chen 2023,
"Learning Transformer Programs", section 3 and their generated code), so that a learned
program decompiles into the `rasp` language, runs in its interpreter and compiles back to
weights:

- `SelectClosest(keys, queries, predicate)`: a selector that keeps, for each query, one
  matching key: the nearest one, a key to the left before one as far to the right, the query's
  own position only when it is the only match; when nothing matches, position 0. This is the
  learned model's rule (their categorical attention with its fixed relative-position bias);
  their decompiler's `select_closest` ranks the query's own position differently.
  With an `Aggregate`, it copies one value: the learned categorical head.
- `SumAggregate(selector, sop)`: the sum (not the mean) of a numerical SOp over the selected
  keys, 0 when nothing is selected: the learned numerical head (`aggregate_sum`; a count when
  the SOp is all ones, which is `SelectorWidth`).
- `Match(wanted)` and `Lookup(first, second, table)`: a learned predicate (a query value
  selects the keys holding one value) and a learned MLP (a two-input table), as functions.
- `Readout(sops, scores, outputs)`: the learned classifier: at each position, the output whose
  summed score is largest (the first of equals), where each categorical SOp adds the score row
  of its value and each numerical SOp its value times its row. A compiled program reads it out
  with its unembedding, so it compiles only as a program's output (where scores within
  float32 rounding of each other may decide either way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rasp.fingerprint import fingerprint
from rasp.rasp import (
    Aggregate,
    KeyQuerySelector,
    RASPExpr,
    Selector,
    SelectorValue,
    SOp,
    Value,
    _check_sop,
    is_numerical,
)


class SelectClosest(KeyQuerySelector):
    """For each query, the closest key `predicate(key, query)` holds for (see the module),
    else key 0."""

    _kind = "select_closest"


def closest(matches: SelectorValue) -> SelectorValue:
    """Each query row of a [query][key] match matrix reduced to its closest match (the
    module's rule), or to key 0 when the row has none."""
    out = []
    for q, row in enumerate(matches):
        keys = [k for k, hit in enumerate(row) if hit]
        best = min(keys, key=lambda k: rank(q, k), default=0)
        out.append([k == best for k in range(len(row))])
    return out


def rank(query: int, key: int) -> int:
    """The closest-match order (smaller first): by distance, left before right, self last."""
    if key == query:
        return 1 << 30
    return 2 * abs(key - query) + (key > query)


class SumAggregate(Aggregate):
    """The sum of the selected values at each query (0 if none): an Aggregate (one head) that
    sums where `Aggregate` averages."""

    _kind = "sum_aggregate"

    def __init__(self, selector: Selector, sop: SOp) -> None:
        super().__init__(selector, sop)


class Readout(SOp):
    """outputs[argmax of the summed scores]: `scores[i]` is, for a categorical `sops[i]`, a
    mapping from each of its values to a row (one score per output), and for a numerical one
    a single row multiplied by its value."""

    _kind = "readout"

    def __init__(
        self,
        sops: Sequence[SOp],
        scores: Sequence[Mapping[Value, Sequence[float]] | Sequence[float]],
        outputs: Sequence[Value],
    ) -> None:
        super().__init__()
        if len(sops) != len(scores) or not sops:
            raise ValueError(
                f"a Readout needs one score table per SOp, got {len(sops)} SOps and "
                f"{len(scores)} tables"
            )
        self.sops = tuple(sops)
        for sop in self.sops:
            _check_sop(sop, "Readout", "sops")
        self.outputs = tuple(outputs)
        self.scores: tuple[Any, ...] = tuple(
            _rows(sop, table, len(self.outputs)) for sop, table in zip(sops, scores, strict=True)
        )

    @property
    def children(self) -> Sequence[RASPExpr]:
        return self.sops

    def _structure(self) -> list[str]:
        return [*(s.label for s in self.sops), fingerprint(self.scores), fingerprint(self.outputs)]

    def totals(self, columns: Sequence[Sequence[Value]]) -> np.ndarray:
        """[pos, outputs] summed scores, given each SOp's values (float64, in `sops` order)."""
        total = np.zeros((len(columns[0]), len(self.outputs)))
        for sop, table, values in zip(self.sops, self.scores, columns, strict=True):
            if is_numerical(sop):
                total += np.array([float(v) for v in values])[:, None] * table
                continue
            missing = sorted({repr(v) for v in values if v not in table})
            if missing:
                raise ValueError(
                    f"the Readout has no scores for {sop.label} = {', '.join(missing)}"
                )
            total += np.stack([table[v] for v in values])
        return total

    def decide(self, columns: Sequence[Sequence[Value]]) -> list[Value]:
        return [self.outputs[i] for i in self.totals(columns).argmax(-1)]


def _rows(sop: SOp, table: Any, n: int) -> Any:
    if is_numerical(sop):
        row = np.asarray(table, dtype=float)
        if row.shape != (n,):
            raise ValueError(f"{sop.label} is numerical: its scores are one row of {n}")
        row.flags.writeable = False
        return row
    rows = {value: np.asarray(r, dtype=float) for value, r in dict(table).items()}
    for value, row in rows.items():
        if row.shape != (n,):
            raise ValueError(f"{sop.label} = {value!r}: a score row holds {n} numbers")
        row.flags.writeable = False
    return rows


class Match:
    """A learned predicate, called as predicate(key, query): query value q selects the keys
    whose value is `wanted[q]` (a query value not in `wanted` selects none)."""

    def __init__(self, wanted: Mapping[Value, Value]) -> None:
        self.wanted = dict(wanted)

    def __call__(self, key: Value, query: Value) -> bool:
        return query in self.wanted and key == self.wanted[query]

    def __repr__(self) -> str:
        return f"Match({self.wanted!r})"


class Lookup:
    """A learned two-input table: f(a, b) = table[a's position in `first`][b's in `second`]."""

    def __init__(self, first: Sequence[Value], second: Sequence[Value], table: Any) -> None:
        """`table`: nested lists or an array, [len(first)][len(second)]."""
        self.first = {v: i for i, v in enumerate(first)}
        self.second = {v: i for i, v in enumerate(second)}
        self.table = np.asarray(table)
        if self.table.shape != (len(self.first), len(self.second)):
            raise ValueError(
                f"a Lookup of {len(self.first)} x {len(self.second)} values needs a table of "
                f"that shape, got {self.table.shape}"
            )
        self.table.flags.writeable = False

    def __call__(self, a: Value, b: Value) -> Any:
        return self.table[self.first[a], self.second[b]].item()

    def __repr__(self) -> str:
        return f"Lookup({len(self.first)} x {len(self.second)})"
