"""Stage 5: every operation as numpy matrices over the residual stream; the executable
intermediate form (`Blocks.apply`), checked against the interpreter and the assembled model.

Attention (one head per Aggregate or SelectorWidth). A selector is a conjunction of
`Select` terms; each adds 1 to the score of a (query, key) pair where its predicate holds,
so selected keys score T (the number of terms) and every other key less. The BOS position
scores T - 1/2 for an Aggregate: it wins only when nothing is selected, and its value is the
Aggregate's default (None is the zero vector). For a SelectorWidth it
scores T, so the attention spreads evenly over BOS and the w selected keys, and BOS's share
1 / (w + 1) goes to `sop.bos_share`, which the block's MLP turns into w. Scores are
multiplied by `coldness` so the softmax is hard to within exp(-coldness / 2).

MLPs (ReLU, biases read from the `one` dimension). A categorical input is a lookup table with
one hidden unit per output value, which sums the input values that map to it (the input is
one-hot); a SequenceMap has one unit per value of one input and output value, relu(a + the
values b that give it with a - 1), grouped on whichever input needs fewer. An output that is
the zero vector (None, a numerical 0) needs no unit. A numerical input with the sorted values
v_0 < ... < v_m is a staircase: f(v_0) plus, wherever f changes between v_(i-1) and v_i, a
unit step at their midpoint, built from two ReLUs with slope 2 / (smallest gap), exact on the
value set. Every hidden unit is switched off at the BOS position, so no SOp has
a value there that a later selector could match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rasp import ltp, rasp
from rasp.compiler.errors import UnsupportedError
from rasp.compiler.graph import selector_terms
from rasp.compiler.layers import Placement
from rasp.compiler.residual import Residual, sort_values

# a SumAggregate's BOS scores this much above its selected keys (after coldness): each selected
# key gets e^-SUM_GAIN of the attention and its value is multiplied by e^SUM_GAIN
SUM_GAIN = 20.0

# the most entries one weight matrix may hold (160 MB as float64): a vocabulary or
# max_seq_len too large for the machine is refused by name, not by running out of memory
MAX_WEIGHTS = 20_000_000


@dataclass(frozen=True)
class Head:
    sop: str
    w_qk: np.ndarray  # [d, d]: score(query x, key y) = x w_qk y
    w_ov: np.ndarray  # [d, d]: what a key's residual writes to the query's
    reads: dict[str, tuple[int, ...]]  # q, k, v: the dimensions that carry information


@dataclass(frozen=True)
class MLP:
    sop: str
    w_in: np.ndarray  # [d, hidden]
    w_out: np.ndarray  # [hidden, d]
    reads: tuple[int, ...] = ()  # the dimensions that carry information (not the BOS switch)


@dataclass(frozen=True)
class Layer:
    heads: tuple[Head, ...]
    mlps: tuple[MLP, ...]


@dataclass(frozen=True)
class Blocks:
    residual: Residual
    layers: tuple[Layer, ...]
    causal: bool

    def apply(self, x: np.ndarray) -> list[np.ndarray]:
        """The residual [pos, d] after the embedding and after every block (numpy)."""
        states = [x]
        n = len(x)
        hidden = np.triu(np.ones((n, n), dtype=bool), 1) if self.causal else None
        for layer in self.layers:
            attended = np.zeros_like(x)
            for head in layer.heads:
                scores = x @ head.w_qk @ x.T
                if hidden is not None:
                    scores = np.where(hidden, -np.inf, scores)
                scores = scores - scores.max(axis=-1, keepdims=True)
                pattern = np.exp(scores)
                pattern /= pattern.sum(axis=-1, keepdims=True)
                attended += pattern @ x @ head.w_ov
            x = x + attended
            out = np.zeros_like(x)
            for mlp in layer.mlps:
                out += np.maximum(x @ mlp.w_in, 0.0) @ mlp.w_out
            x = x + out
            states.append(x)
        return states


def build_blocks(
    graph_exprs: dict[str, rasp.RASPExpr],
    values: dict[str, set[Any]],
    residual: Residual,
    placement: Placement,
    causal: bool,
    coldness: float,
) -> Blocks:
    build = _Builder(graph_exprs, values, residual, coldness)
    layers = []
    for layer in range(placement.n_layers):
        heads = tuple(build.head(label) for label in placement.heads(layer))
        mlps = tuple(build.mlp(label) for label in placement.mlps(layer))
        layers.append(Layer(heads, tuple(build.off_at_bos(m) for m in mlps)))
    return Blocks(residual, tuple(layers), causal)


class _Builder:
    def __init__(self, exprs, values, residual: Residual, coldness: float) -> None:
        self.exprs, self.values, self.r, self.coldness = exprs, values, residual, coldness
        self.d = residual.size
        _check_weights("the residual stream", self.d, "its heads' query-key matrices", self.d)
        self.bound = np.ones(self.d)  # the largest |value| each dimension holds
        for label, dim in residual.numerical.items():
            found = [abs(float(v)) for v in values.get(label, ()) if v is not None]
            self.bound[dim] = max(found, default=1.0)

    # ----- attention ---------------------------------------------------------------------
    def head(self, label: str) -> Head:
        expr = self.exprs[label]
        if isinstance(expr.selector, ltp.SelectClosest):
            return self._closest(expr, label)
        terms = selector_terms(expr.selector, label)
        w_qk = np.zeros((self.d, self.d))
        for keys, queries, predicate in terms:
            key_values = list(self.values[keys.label])
            key_dims = [self._cat(keys.label, k) for k in key_values]
            for q in self.values[queries.label]:
                row = self._cat(queries.label, q)
                hits = [
                    d
                    for k, d in zip(key_values, key_dims, strict=True)
                    if _holds(predicate, k, q, label)
                ]
                w_qk[row, hits] += 1.0
        width = isinstance(expr, rasp.SelectorWidth)
        summed = isinstance(expr, ltp.SumAggregate)
        bos = len(terms) if width else len(terms) - 0.5
        w_qk[self.r.one, self.r.bos_dim] += len(terms) + SUM_GAIN / self.coldness if summed else bos
        w_ov = np.zeros((self.d, self.d))
        if width:
            w_ov[self.r.bos_dim, self.r.numerical[f"{label}.bos_share"]] = 1.0
        else:
            source = expr.sop.label
            if rasp.is_numerical(expr):
                gain = np.exp(SUM_GAIN) if summed else 1.0
                w_ov[self.r.numerical[source], self.r.numerical[label]] = gain
            else:
                for value in self.values[source]:
                    w_ov[self._cat(source, value), self._cat(label, value)] = 1.0
            # BOS wins only when nothing is selected: its value is the default
            self._write(w_ov[self.r.bos_dim], label, expr.default, 1.0)
        reads = self._head_reads(w_qk, w_ov, width)
        return Head(label, self.coldness * w_qk, w_ov, reads)

    def _closest(self, expr: rasp.Aggregate, label: str) -> Head:
        """A SelectClosest head over (value, index) keys and queries (graph._closest_head).
        With n positions and the closeness R(i, j) = 2n + 1 - (2 |i - j| + [j > i]), or 1
        for j = i (so 1 <= R <= 2n - 1), a key scores 4n if it matches, plus 2n if it is key
        0 and does not match, plus R: every match beats every other key, key 0 wins when
        nothing matches, the closest match wins among matches, and BOS (1/2) never wins."""
        selector = expr.selector
        assert isinstance(selector, ltp.SelectClosest)
        n = len(self.values[rasp.indices.label])
        keys, queries = selector.keys.label, selector.queries.label
        w_qk = np.zeros((self.d, self.d))
        key_values = sort_values(self.values[keys])
        key_dims = [self._cat(keys, k) for k in key_values]
        for q in sort_values(self.values[queries]):
            row, i = self._cat(queries, q), q[1]
            for k, col in zip(key_values, key_dims, strict=True):
                j, match = k[1], _holds(selector.predicate, k, q, label)
                near = 1 if i == j else 2 * n + 1 - ltp.rank(i, j)
                w_qk[row, col] = 4 * n * match + 2 * n * (j == 0 and not match) + near
        w_qk[self.r.one, self.r.bos_dim] = 0.5
        w_ov = np.zeros((self.d, self.d))
        source = expr.sop.label
        for value in self.values[source]:
            w_ov[self._cat(source, value), self._cat(label, value)] = 1.0
        reads = self._head_reads(w_qk, w_ov, False)
        return Head(label, self.coldness * w_qk, w_ov, reads)

    def _head_reads(
        self, w_qk: np.ndarray, w_ov: np.ndarray, width: bool
    ) -> dict[str, tuple[int, ...]]:
        """The dimensions a head needs. Scores that are the same for every pair of query and
        key values (a TRUE selector) need neither queries nor keys. An Aggregate's BOS term
        only decides the default, so it is not information; a SelectorWidth's BOS share is."""
        one, bos = self.r.one, self.r.bos_dim
        queries = [int(i) for i in np.flatnonzero(np.abs(w_qk).sum(axis=1)) if i != one]
        keys = [int(i) for i in np.flatnonzero(np.abs(w_qk).sum(axis=0)) if i != bos]
        block = w_qk[np.ix_(queries, keys)]
        constant = block.size == 0 or bool(np.all(block == block.flat[0]))
        if constant:
            queries, keys = [], []
        elif width:
            queries, keys = [*queries, one], [*keys, bos]
        values = np.flatnonzero(np.abs(w_ov).sum(axis=1)).tolist()
        return {"q": tuple(queries), "k": tuple(keys), "v": tuple(values)}

    # ----- MLPs --------------------------------------------------------------------------
    def mlp(self, label: str) -> MLP:
        expr = self.exprs[label]
        match expr:
            case rasp.SelectorWidth():
                return self._width(expr, label)
            case rasp.Full():
                return self._table(label, [([(self.r.one, 1.0)], 0.0, expr.fill)])
            case rasp.LinearSequenceMap() if rasp.is_numerical(expr.fst) or rasp.is_numerical(
                expr.snd
            ):
                return self._linear(expr, label)
            case rasp.SequenceMap():
                return self._pairs(expr, label)
            case rasp.Map():
                if rasp.is_numerical(expr.inner):
                    return self._staircase(label, expr.inner.label, expr.f)
                return self._grouped(label, expr.inner.label, expr.f)
        raise UnsupportedError(f"{label}: {type(expr).__name__} has no MLP form")

    def _width(self, expr: rasp.SelectorWidth, label: str) -> MLP:
        share = f"{label}.bos_share"
        widths = range(len(self.values[label]))
        points = [(1.0 / (w + 1), w) for w in widths]
        return self._steps(label, self.r.numerical[share], points)

    def _pairs(self, expr: rasp.SequenceMap, label: str) -> MLP:
        # numerical inputs are read through categorical copies (graph._categorical_inputs)
        fst, snd = expr.fst.label, expr.snd.label
        sizes = len(self.values[fst]), len(self.values[snd])  # values.MAX_PAIRS bounds both
        # at most a unit per value of the smaller input and output value: refused before
        # anything that large is built
        units = min(sizes) * max(1, len(self.values[label]))
        what = "lookup table (a unit per value of one input and output value)"
        _check_weights(label, self.d, what, units)
        by_fst = self._pair_rows(label, fst, snd, expr.f)
        by_snd = self._pair_rows(label, snd, fst, lambda b, a: expr.f(a, b))
        return self._table(label, min(by_fst, by_snd, key=len))

    def _pair_rows(self, label: str, outer: str, inner: str, f) -> list:
        """A unit for each value a of `outer` and each output v: relu(a + (the values b of
        `inner` with f(a, b) = v) - 1), which is 1 exactly where a and such a b meet."""
        rows = []
        for a in sort_values(self.values[outer]):
            groups: dict[Any, list[Any]] = {}
            for b in sort_values(self.values[inner]):
                groups.setdefault(_total(f, a, b), []).append(b)
            for out, bs in groups.items():
                if self._writes(label, out):
                    reads = [(self._cat(outer, a), 1.0), *((self._cat(inner, b), 1.0) for b in bs)]
                    rows.append((reads, -1.0, out))
        return rows

    def _grouped(self, label: str, source: str, f) -> MLP:
        """A categorical input's table: one unit per output value, relu(the input values
        that map to it), which is 1 exactly for them (the input is one-hot)."""
        groups: dict[Any, list[Any]] = {}
        for v in sort_values(self.values[source]):
            groups.setdefault(_total(f, v), []).append(v)
        rows = [
            ([(self._cat(source, v), 1.0) for v in vs], 0.0, out)
            for out, vs in groups.items()
            if self._writes(label, out)
        ]
        return self._table(label, rows)

    def _writes(self, label: str, value: Any) -> bool:
        """Whether `value` as `label` is anything but the zero vector (None, or a numerical
        0): a unit writing nothing is not needed."""
        if value is None:
            return False
        return not (rasp.is_numerical(self.exprs[label]) and float(value) == 0.0)

    def _table(self, label: str, rows: list[tuple[list[tuple[int, float]], float, Any]]) -> MLP:
        """One hidden unit per row: relu(sum of reads + bias) writes the row's output."""
        _check_weights(label, self.d, "lookup table", len(rows))
        w_in = np.zeros((self.d, len(rows)))
        w_out = np.zeros((len(rows), self.d))
        for h, (reads, bias, out) in enumerate(rows):
            for dim, weight in reads:
                w_in[dim, h] += weight
            w_in[self.r.one, h] += bias
            self._write(w_out[h], label, out, 1.0)
        return MLP(label, w_in, w_out)

    def _staircase(self, label: str, source: str, f) -> MLP:
        points = [(float(v), _total(f, v)) for v in sort_values(self.values[source])]
        return self._steps(label, self.r.numerical[source], points)

    def _steps(self, label: str, dim: int, points: list[tuple[float, Any]]) -> MLP:
        """out(x) = f(x_0) + sum_i step_i (f(x_i) - f(x_(i-1))) over the sorted points where
        the output changes (none between points with the same output): step i is
        relu(s (x - m_i) + 1/2) - relu(s (x - m_i) - 1/2), 0 below the midpoint m_i of
        x_(i-1) and x_i and 1 above it (s = 2 / the smallest gap)."""
        points = _merged(sorted(points, key=lambda p: p[0]), label)
        xs = np.array([x for x, _ in points], dtype=float)
        ys = [y for _, y in points]
        slope = 2.0 / np.diff(xs).min() if len(xs) > 1 else 1.0
        changes = [i for i in range(1, len(ys)) if ys[i] != ys[i - 1]]
        n_hidden = 1 + 2 * len(changes)
        _check_weights(label, self.d, "staircase", n_hidden)
        w_in = np.zeros((self.d, n_hidden))
        w_out = np.zeros((n_hidden, self.d))
        w_in[self.r.one, 0] = 1.0  # the constant f(x_0)
        self._write(w_out[0], label, ys[0], 1.0)
        up, down = np.arange(1, n_hidden, 2), np.arange(2, n_hidden, 2)
        middle = np.array([(xs[i - 1] + xs[i]) / 2 for i in changes], dtype=float)
        w_in[dim, 1:] = slope
        w_in[self.r.one, up] = -slope * middle + 0.5
        w_in[self.r.one, down] = -slope * middle - 0.5
        # unit up_i writes f(x_i) - f(x_(i-1)); unit down_i the opposite
        new_cols, new_weights = self._encode(label, [ys[i] for i in changes])
        old_cols, old_weights = self._encode(label, [ys[i - 1] for i in changes])
        for units, sign in ((up, 1.0), (down, -1.0)):
            np.add.at(w_out, (units, new_cols), sign * new_weights)
            np.add.at(w_out, (units, old_cols), -sign * old_weights)
        return MLP(label, w_in, w_out)

    def _encode(self, label: str, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Each value's residual dimension as `label` and its weight there (0 for None)."""
        if rasp.is_numerical(self.exprs[label]):
            cols = np.full(len(values), self.r.numerical[label], dtype=int)
            weights = np.array([0.0 if v is None else float(v) for v in values], dtype=float)
            return cols, weights
        cols = np.array([0 if v is None else self._cat(label, v) for v in values], dtype=int)
        weights = np.array([0.0 if v is None else 1.0 for v in values], dtype=float)
        return cols, weights

    def _linear(self, expr: rasp.LinearSequenceMap, label: str) -> MLP:
        if not rasp.is_numerical(expr):
            raise UnsupportedError(
                f"{label}: a LinearSequenceMap of numerical SOps is numerical; annotate it "
                f"rasp.numerical(...)"
            )
        w_in = np.zeros((self.d, 4))
        w_out = np.zeros((4, self.d))
        out = self.r.numerical[label]
        for i, (sop, factor) in enumerate(((expr.fst, expr.fst_fac), (expr.snd, expr.snd_fac))):
            if not rasp.is_numerical(sop):
                raise UnsupportedError(
                    f"{label}: a LinearSequenceMap mixes the categorical SOp {sop.label} with a "
                    "numerical one; annotate both rasp.numerical(...)"
                )
            source = self.r.numerical[sop.label]
            w_in[source, 2 * i], w_in[source, 2 * i + 1] = 1.0, -1.0  # relu(x) - relu(-x) = x
            w_out[2 * i, out], w_out[2 * i + 1, out] = factor, -factor
        return MLP(label, w_in, w_out)

    def _write(self, row: np.ndarray, label: str, value: Any, sign: float) -> None:
        """Add sign * (the encoding of `value` as `label`) to an output row."""
        if value is None:
            return
        if rasp.is_numerical(self.exprs[label]):
            row[self.r.numerical[label]] += sign * float(value)
        else:
            row[self._cat(label, value)] += sign

    def _cat(self, sop: str, value: Any) -> int:
        return self.r.categorical[(sop, value)]

    def off_at_bos(self, mlp: MLP) -> MLP:
        """Every hidden unit below zero at the BOS position, whatever the residual holds
        there: a weight on tokens:BOS larger than the unit's largest possible input."""
        w_in = mlp.w_in.copy()
        reads = tuple(np.flatnonzero(np.abs(w_in).sum(axis=1)).tolist())
        reach = np.abs(w_in).T @ self.bound  # [hidden]
        w_in[self.r.bos_dim] = -(reach + 1.0)
        return MLP(mlp.sop, w_in, mlp.w_out, reads)


def _check_weights(label: str, d: int, what: str, n: int) -> None:
    if d * n > MAX_WEIGHTS:
        raise UnsupportedError(
            f"{label}: its {what} needs {n:,} x {d:,} weights (d_model {d:,}), over the limit "
            f"of {MAX_WEIGHTS:,} for one matrix (rasp.compiler.blocks.MAX_WEIGHTS); shrink "
            "the vocabulary or max_seq_len"
        )


def _total(f, *args: Any) -> Any:
    """f(*args), or None (nothing written) where f fails: the value sets leave such inputs
    out (`values._outputs`), so no input that reaches the model is one of them."""
    try:
        return f(*args)
    except Exception:
        return None


def _merged(points: list[tuple[float, Any]], label: str) -> list[tuple[float, Any]]:
    """Points closer than float rounding (2/3 - 1/3 and 1/3) are one point; they must map to
    the same output."""
    out: list[tuple[float, Any]] = []
    for x, y in points:
        if out and abs(x - out[-1][0]) <= 1e-9 * max(1.0, abs(x)):
            if out[-1][1] != y:
                raise UnsupportedError(
                    f"{label}: its function gives {out[-1][1]!r} at {out[-1][0]!r} and {y!r} "
                    f"at {x!r}, inputs equal up to float rounding; round its input first"
                )
            continue
        out.append((x, y))
    return out


def _holds(predicate, key: Any, query: Any, label: str) -> bool:
    try:
        return bool(predicate(key, query))
    except Exception as error:
        raise UnsupportedError(
            f"{label}: its predicate fails on key={key!r}, query={query!r} "
            f"({type(error).__name__}: {error}); make it total on the SOps' values"
        ) from error
