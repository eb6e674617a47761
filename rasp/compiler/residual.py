"""Stage 4: the residual stream, one labelled dimension each for: `one` (1 at every position,
the MLPs' bias), every token value and the compiler's BOS (`tokens:a`, `tokens:BOS`), every
index (`indices:0`), every value of each categorical SOp (`sop:value`), each numerical SOp
(`sop`), and each selector width's attention output (`sop.bos_share`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasp import ltp, rasp
from rasp.compiler.graph import ProgramGraph

ONE = "one"


def sort_values(values: set[Any]) -> list[Any]:
    """Numbers in numeric order first, then everything else by type and text."""

    def key(v: Any) -> tuple:
        if isinstance(v, (int, float)):
            return (0, "", float(v), repr(v))
        return (1, type(v).__name__, 0.0, repr(v))

    return sorted(values, key=key)


@dataclass(frozen=True)
class Residual:
    labels: tuple[str, ...]
    categorical: dict[tuple[str, Any], int] = field(repr=False)  # (sop, value) -> dimension
    numerical: dict[str, int] = field(repr=False)  # sop (or sop.bos_share) -> dimension
    bos: str

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def one(self) -> int:
        return self.numerical[ONE]

    @property
    def bos_dim(self) -> int:
        return self.categorical[(rasp.tokens.label, self.bos)]

    def dims_of(self, sop: str) -> list[int]:
        """Every dimension holding `sop`."""
        if sop in self.numerical:
            return [self.numerical[sop]]
        return [i for (label, _), i in self.categorical.items() if label == sop]


def allocate(graph: ProgramGraph, values: dict[str, set[Any]], bos: str) -> Residual:
    labels: list[str] = []
    categorical: dict[tuple[str, Any], int] = {}
    numerical: dict[str, int] = {}

    def number(name: str) -> None:
        numerical[name] = len(labels)
        labels.append(name)

    def one_hot(sop: str, domain: list[Any]) -> None:
        for value in domain:
            categorical[(sop, value)] = len(labels)
            labels.append(f"{sop}:{value}")

    number(ONE)
    one_hot(rasp.tokens.label, [bos, *sort_values(values.get(rasp.tokens.label, set()))])
    for label in graph.sops():
        expr = graph.exprs[label]
        if isinstance(expr, (rasp.TokensType, ltp.Readout)):  # a Readout is the unembedding
            continue
        if isinstance(expr, rasp.SelectorWidth):
            number(f"{label}.bos_share")
        if rasp.is_numerical(expr):
            number(label)
        else:
            one_hot(label, sort_values(values[label]))
    return Residual(tuple(labels), categorical, numerical, bos)
