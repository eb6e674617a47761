"""What a program needs from a transformer, without compiling it: how many layers, and how
many attention heads and MLP lookups each layer holds (the compiler's placement: every
operation at the earliest sublayer after what it reads), including the MLP that zips the
SOps an `|` of selectors compares. It also counts programs the compiler refuses."""

from __future__ import annotations

from dataclasses import dataclass

from rasp import rasp
from rasp.compiler.graph import program_graph
from rasp.compiler.layers import place


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
