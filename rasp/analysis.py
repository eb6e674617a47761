"""A program without compiling it: what it needs from a transformer (how many layers, and
how many attention heads and MLP lookups each layer holds: the compiler's placement, every
operation at the earliest sublayer after what it reads, including the MLP that zips the SOps
an `|` of selectors compares; it also counts programs the compiler refuses), and the value
of every one of its SOps on an input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rasp import rasp
from rasp.compiler.graph import program_graph
from rasp.compiler.layers import place
from rasp.interpreter import evaluate_all


@dataclass(frozen=True)
class PaperCount:
    """The RASP paper's count (Weiss et al. 2021, Table 1): attention layers only, each
    Aggregate or SelectorWidth one layer after what it reads, elementwise operations free,
    and in each layer one head per distinct selector (two aggregates of one selector share
    it; `length` is one, of the select-everything selector)."""

    layers: int
    heads: tuple[tuple[str, ...], ...]  # per layer: the distinct selectors its heads use

    @property
    def max_heads(self) -> int:
        return _most(self.heads)

    def to_json(self) -> dict:
        return {
            "convention": "the RASP paper's: attention layers, a head per distinct selector",
            "layers": self.layers,
            "max_heads": self.max_heads,
            "heads": [list(h) for h in self.heads],
        }


@dataclass(frozen=True)
class Requirements:
    """The compiled placement (what `compile_rasp` builds: attention and MLP sublayers, a
    head per Aggregate or SelectorWidth), and the paper's count (`paper`)."""

    layers: int
    heads: tuple[tuple[str, ...], ...]  # per layer: the SOps its heads compute
    mlps: tuple[tuple[str, ...], ...]  # per layer: the SOps its MLP computes
    paper: PaperCount

    @property
    def max_heads(self) -> int:
        return _most(self.heads)

    def to_json(self) -> dict:
        return {
            "convention": "compiled placement: attention and MLP sublayers, a head per operation",
            "layers": self.layers,
            "max_heads": self.max_heads,
            "heads": [list(h) for h in self.heads],
            "mlps": [list(m) for m in self.mlps],
            "paper": self.paper.to_json(),
        }


def _most(per_layer: tuple[tuple[str, ...], ...]) -> int:
    return max((len(h) for h in per_layer), default=0)


def requirements(program: rasp.SOp) -> Requirements:
    placement = place(program_graph(program, check=False))
    layers = range(placement.n_layers)
    return Requirements(
        placement.n_layers,
        tuple(tuple(placement.heads(layer)) for layer in layers),
        tuple(tuple(placement.mlps(layer)) for layer in layers),
        paper_count(program),
    )


def paper_count(program: rasp.SOp) -> PaperCount:
    """`PaperCount` of `program`, walking it with a stack (a program may be thousands of
    operations deep)."""
    depth: dict[str, int] = {}
    selectors: dict[int, dict[str, None]] = {}  # layer -> its distinct selectors, in order
    for expr in _children_first(program):
        reads = [depth[child.label] for child in expr.children]
        match expr:
            case rasp.LengthType():
                layer, selector = 1, "select(tokens, tokens, True)"
            case rasp.Aggregate() | rasp.SelectorWidth():
                layer, selector = 1 + max(reads), expr.selector.label
            case _:
                depth[expr.label] = max(reads, default=0)
                continue
        depth[expr.label] = layer
        selectors.setdefault(layer, {})[selector] = None
    layers = depth[program.label]
    return PaperCount(layers, tuple(tuple(selectors.get(i, {})) for i in range(1, layers + 1)))


def _children_first(program: rasp.RASPExpr) -> list[rasp.RASPExpr]:
    """Every expression of `program` once (by label), each after its children."""
    order: list[rasp.RASPExpr] = []
    done: set[str] = set()
    stack: list[tuple[rasp.RASPExpr, bool]] = [(program, False)]
    while stack:
        expr, expanded = stack.pop()
        if expr.label in done:
            continue
        if expanded:
            done.add(expr.label)
            order.append(expr)
            continue
        stack.append((expr, True))
        stack.extend((child, False) for child in expr.children if child.label not in done)
    return order


@dataclass(frozen=True)
class ProgramValues:
    """Every SOp of a program on one input, by the interpreter, in the compiler's graph order
    (each after what it reads; `length` is the selector width that computes it)."""

    program: str  # the output SOp's label
    input: tuple[Any, ...]
    sops: tuple[str, ...]
    kinds: tuple[str, ...]  # Map, Aggregate, SelectorWidth, ...
    values: tuple[tuple[Any, ...], ...]  # [sop][position]
    causal: bool

    def value(self, sop: str) -> tuple[Any, ...]:
        return self.values[self.sops.index(sop)]

    @property
    def output(self) -> tuple[Any, ...]:
        return self.value(self.program)

    def to_json(self) -> str:
        return json.dumps(vars(self), default=str)


def program_values(program: rasp.SOp, xs: Sequence[Any], causal: bool = False) -> ProgramValues:
    """The value of every SOp of `program` on `xs` (the interpreter's `EvaluationError` if
    one cannot be evaluated there)."""
    graph = program_graph(program, check=False)
    sops = graph.sops()
    values = evaluate_all([graph.exprs[s] for s in sops], list(xs), causal)
    return ProgramValues(
        graph.output.label,
        tuple(xs),
        tuple(sops),
        tuple(type(graph.exprs[s]).__name__ for s in sops),
        tuple(tuple(v) for v in values),
        causal,
    )
