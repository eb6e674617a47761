"""The authors' shipped programs (princeton-nlp/TransformerPrograms `programs/rasp*/`),
imported as data into our program form: their decompiled Python is parsed (never run) for
each head's predicate, selection and value, each MLP's table, and the readout weights from the
program's CSV. The imported program runs on our data (`LearnedProgram.run`), freezes into a
workbench model and prints as our Python like any learned one.

Their files were written by their decompiler, whose `select_closest` ranks a query's own
position by the number of matches where their model ranks it last; `run_as_written` keeps
their ranking, to compare the two on the same inputs.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rasp.learned import tasks
from rasp.learned.program import Head, Layer, LearnedProgram, Table

NO_MATCH = -1  # a query value no key value matches


@dataclass(frozen=True)
class Shipped:
    """A shipped program parsed: steps in their file's order, and the readout."""

    path: Path
    heads: list[tuple[str, str, str, str, dict[Any, Any]]]  # name, kind, query, key, value
    head_values: dict[str, str]  # head -> the variable it aggregates
    mlps: list[tuple[str, tuple[str, ...], dict[Any, Any], Any]]  # name, inputs, table, default
    weights: dict[tuple[str, str], np.ndarray]  # (feature, value) -> logits per class
    classes: list[str]


def parse(path: str | Path) -> Shipped:
    """Read one shipped program (`.py` and its `_weights.csv` beside it); `FormatError`
    naming the file for anything else."""
    path = Path(path)
    try:
        return _parse(path)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except (OSError, SyntaxError, KeyError, ValueError, IndexError, StopIteration) as exc:
        raise FormatError(
            f"{path} is not a program in the format of the authors' shipped programs "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _parse(path: Path) -> Shipped:
    tree = ast.parse(path.read_text())
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    predicates: dict[str, dict[Any, Any]] = {}
    functions: dict[str, tuple[dict[Any, Any], Any]] = {}
    selections: dict[str, tuple[str, str, str, str]] = {}  # pattern -> kind, keys, queries, pred
    heads, head_values, mlps = [], {}, []
    for node in run.body:
        if isinstance(node, ast.FunctionDef) and "predicate" in node.name:
            predicates[node.name] = _predicate(node)
        elif isinstance(node, ast.FunctionDef) and "mlp" in node.name:
            functions[node.name] = _table(node)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call | ast.ListComp):
            target = getattr(node.targets[0], "id", "")
            call = node.value
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") in (
                "select",
                "select_closest",
            ):
                keys, queries, pred = (getattr(a, "id", "") for a in call.args)
                kind = "num" if call.func.id == "select" else "cat"  # type: ignore[union-attr]
                selections[target] = (kind, keys, queries, pred)
            elif isinstance(call, ast.Call) and getattr(call.func, "id", "") in (
                "aggregate",
                "aggregate_sum",
            ):
                pattern, values = (getattr(a, "id", "") for a in call.args)
                kind, keys, queries, pred = selections[pattern]
                name = _strip(target)
                heads.append((name, kind, queries, keys, predicates[pred]))
                head_values[name] = values
            elif isinstance(call, ast.ListComp) and isinstance(call.elt, ast.Call):
                function = getattr(call.elt.func, "id", "")
                if function in functions:
                    source = call.generators[0].iter
                    args = source.args if isinstance(source, ast.Call) else [source]
                    inputs = tuple(getattr(a, "id", "") for a in args)
                    table, default = functions[function]
                    mlps.append((_strip(target), inputs, table, default))
    weights, classes = _weights(path.with_name(path.stem + "_weights.csv"))
    return Shipped(path, heads, head_values, mlps, weights, classes)


def _strip(name: str) -> str:
    return name.removesuffix("_outputs")


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


class FormatError(ValueError):
    """A file that is not in the format of the authors' shipped programs."""


def _branches(node: ast.FunctionDef) -> list[tuple[ast.expr, ast.stmt]]:
    """(`x in {...}` test, first statement) of every if/elif of the function's body."""
    out = []
    for statement in node.body:
        while isinstance(statement, ast.If):
            test = statement.test
            if not (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.In)):
                raise FormatError(f"{node.name}: expected `if VALUE in {{...}}:`")
            out.append((test.comparators[0], statement.body[0]))
            statement = statement.orelse[0] if statement.orelse else None
    return out


def _predicate(node: ast.FunctionDef) -> dict[Any, Any]:
    """`if q in {...}: return k == V` / `elif ...` -> {q: V}."""
    out: dict[Any, Any] = {}
    for values, statement in _branches(node):
        if not (isinstance(statement, ast.Return) and isinstance(statement.value, ast.Compare)):
            raise FormatError(f"{node.name}: expected `return k == VALUE`")
        for q in _literal(values):
            out.setdefault(q, _literal(statement.value.comparators[0]))
    return out


def _table(node: ast.FunctionDef) -> tuple[dict[Any, Any], Any]:
    """`key = ...; if key in {...}: return V ...; return D` -> ({key: V}, D)."""
    out: dict[Any, Any] = {}
    for keys, statement in _branches(node):
        if not (isinstance(statement, ast.Return) and statement.value is not None):
            raise FormatError(f"{node.name}: expected `return VALUE`")
        for key in _literal(keys):
            out.setdefault(key, _literal(statement.value))
    final = node.body[-1]
    if not (isinstance(final, ast.Return) and final.value is not None):
        raise FormatError(f"{node.name}: expected a final `return DEFAULT`")
    return out, _literal(final.value)


def _weights(path: Path) -> tuple[dict[tuple[str, str], np.ndarray], list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    classes = rows[0][2:]
    weights = {(r[0], r[1]): np.array([float(x) for x in r[2:]]) for r in rows[1:]}
    return weights, classes


class _Values:
    """Maps a variable's values (their words and numbers) to our value indices."""

    def __init__(self, shipped: Shipped, words: tuple[str, ...]) -> None:
        self.word_id = {w: i for i, w in enumerate(words)}
        self.kind = {"tokens": "token", "positions": "number", "ones": "number"}
        for name, _, _, _ in shipped.mlps:
            self.kind[name] = "number"
        for name, _, _, _, _ in shipped.heads:  # in order: a head may copy an earlier one
            self.kind[name] = self.kind[_strip(shipped.head_values[name])]

    def index(self, variable: str, value: Any) -> int:
        if self.kind[_strip(variable)] == "token":
            return self.word_id[value]
        return int(value)


def to_program(shipped: Shipped, data: tasks.Dataset) -> LearnedProgram:
    """The shipped program in our form, on the vocabularies of its task's `data`."""
    return import_program(
        shipped,
        words=data.words,
        tags=data.tags,
        d_var=data.spec.max_length,  # the scripts' --d_var
        n_ctx=data.n_ctx,
        autoregressive=data.spec.autoregressive,
    )


def import_program(
    shipped: Shipped,
    *,
    words: tuple[str, ...],
    tags: tuple[str, ...],
    d_var: int,
    n_ctx: int,
    autoregressive: bool,
) -> LearnedProgram:
    """The shipped program in our form: `words` and `tags` in id order (0 is <pad>)."""
    k = d_var
    values = _Values(shipped, words)
    layers: dict[int, dict[str, list[Any]]] = {}
    bounds = {"ones": 1}

    def layer(name: str) -> dict[str, list[Any]]:
        index = int(name.split("_")[-2])
        return layers.setdefault(index, {"cat": [], "num": [], "mlp": [], "num_mlp": []})

    for name, kind, query, key, predicate in shipped.heads:
        table = [NO_MATCH] * k
        for q, target in predicate.items():
            if target is not None and _known(values, query, q) and _known(values, key, target):
                table[values.index(query, q)] = values.index(key, target)
        value = _strip(shipped.head_values[name])
        head = Head(name, _strip(query), _strip(key), value, tuple(table))
        layer(name)["num" if kind == "num" else "cat"].append(head)
        if kind == "num":
            bounds[name] = n_ctx * bounds[value]
    for name, inputs, entries, default in shipped.mlps:
        numerical = name.startswith("num_")
        a, b = (_strip(v) for v in (inputs * 2)[:2])
        sizes = [bounds[v] + 1 if numerical else k for v in (a, b)]
        grid = np.full(sizes, int(default), dtype=np.int64)
        for key, out in entries.items():
            key = key if len(inputs) == 2 else (key, None)
            i = values.index(a, key[0]) if _known(values, a, key[0]) else None
            if i is None or i >= sizes[0]:
                continue
            if len(inputs) == 2:
                j = values.index(b, key[1]) if _known(values, b, key[1]) else None
                if j is not None and j < sizes[1]:
                    grid[i, j] = out
            else:
                grid[i, :] = out
        layer(name)["num_mlp" if numerical else "mlp"].append(Table(name, (a, b), grid))
    program_layers = tuple(
        Layer(tuple(g["cat"]), tuple(g["num"]), tuple(g["mlp"]), tuple(g["num_mlp"]))
        for _, g in sorted(layers.items())
    )
    readout = _readout(shipped, values, tags, k, program_layers)
    masked = tuple(i for i, t in enumerate(tags) if t not in shipped.classes)
    return LearnedProgram(k, n_ctx, autoregressive, program_layers, readout, masked)


def _known(values: _Values, variable: str, value: Any) -> bool:
    if values.kind[_strip(variable)] == "token":
        return value in values.word_id
    return isinstance(value, int) and value >= 0


def _readout(
    shipped: Shipped, values: _Values, tags: tuple[str, ...], k: int, layers: tuple[Layer, ...]
) -> dict[str, np.ndarray]:
    column = [shipped.classes.index(t) if t in shipped.classes else None for t in tags]

    def row(weights: np.ndarray | None) -> np.ndarray:
        out = np.zeros(len(tags))
        if weights is not None:
            for i, c in enumerate(column):
                if c is not None:
                    out[i] = weights[c]
        return out

    names = ["tokens", "positions"]
    numbers = ["ones"]
    for layer in layers:
        names += [m.name for m in (*layer.cat_heads, *layer.cat_mlps, *layer.num_mlps)]
        numbers += [h.name for h in layer.num_heads]
    readout: dict[str, np.ndarray] = {}
    for name in names:
        table = np.zeros((k, len(tags)))
        for (feature, value), weights in shipped.weights.items():
            if _strip(feature) == name and _known(values, name, _parse_value(values, name, value)):
                index = values.index(name, _parse_value(values, name, value))
                if index < k:
                    table[index] = row(weights)
        readout[name] = table
    for name in numbers:
        readout[name] = row(
            shipped.weights.get((f"{name}_outputs", "_"), shipped.weights.get((name, "_")))
        )
    return readout


def _parse_value(values: _Values, name: str, text: str) -> Any:
    if values.kind[name] == "token":
        return text
    try:
        return int(text)
    except ValueError:
        return None


def their_closest(matches: np.ndarray) -> np.ndarray:
    """The authors' decompiled `select_closest`: a query's own position ranks as far as the
    number of matches; otherwise nearest, left first."""
    p = matches.shape[-1]
    count = matches.sum(-1, keepdims=True)  # (b, query, 1)
    q, k = np.arange(p)[:, None], np.arange(p)[None, :]
    distance = np.where(q == k, count, np.abs(k - q))
    rank = distance * (2 * p) + k  # min over (distance, index)
    chosen = np.where(matches, rank, np.iinfo(np.int64).max).argmin(-1)
    return np.where(matches.any(-1), chosen, 0)
