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
class Requirements:
    layers: int
    heads: tuple[tuple[str, ...], ...]  # per layer: the SOps its heads compute
    mlps: tuple[tuple[str, ...], ...]  # per layer: the SOps its MLP computes

    @property
    def max_heads(self) -> int:
        return max((len(h) for h in self.heads), default=0)

    def to_json(self) -> dict:
        return {
            "layers": self.layers,
            "max_heads": self.max_heads,
            "heads": [list(h) for h in self.heads],
            "mlps": [list(m) for m in self.mlps],
        }


def requirements(program: rasp.SOp) -> Requirements:
    placement = place(program_graph(program, check=False))
    layers = range(placement.n_layers)
    return Requirements(
        placement.n_layers,
        tuple(tuple(placement.heads(layer)) for layer in layers),
        tuple(tuple(placement.mlps(layer)) for layer in layers),
    )


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
