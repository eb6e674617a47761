"""Stage 3: which sublayer computes each operation. Sublayer 2l is block l's attention and
2l + 1 its MLP; the embedding is -1. An Aggregate needs an attention sublayer, a Map,
SequenceMap or Full an MLP sublayer, and a SelectorWidth an attention sublayer followed by
the MLP of the same block. Each operation goes to the earliest sublayer of its kind after
everything it reads (as soon as possible), which gives the fewest layers."""

from __future__ import annotations

from dataclasses import dataclass

from rasp import rasp
from rasp.compiler.graph import ProgramGraph

EMBEDDING = -1


@dataclass(frozen=True)
class Placement:
    sublayer: dict[str, int]  # SOp label -> the sublayer that writes it (-1: the embedding)
    attention: dict[str, int]  # Aggregate / SelectorWidth label -> its attention sublayer
    n_layers: int

    def heads(self, layer: int) -> list[str]:
        return [label for label, s in self.attention.items() if s == 2 * layer]

    def mlps(self, layer: int) -> list[str]:
        """Maps, SequenceMaps, Fulls and the lookup half of SelectorWidths of this block."""
        return [label for label, s in self.sublayer.items() if s == 2 * layer + 1]


def reads(expr: rasp.SOp) -> list[rasp.SOp]:
    """The SOps an operation reads, its selector's keys and queries included."""
    match expr:
        case rasp.Aggregate():
            return [*selector_sops(expr.selector), expr.sop]
        case rasp.SelectorWidth():
            return selector_sops(expr.selector)
        case _:
            return [c for c in expr.children if isinstance(c, rasp.SOp)]


def selector_sops(selector: rasp.Selector) -> list[rasp.SOp]:
    match selector:
        case rasp.Select():
            return [selector.keys, selector.queries]
        case rasp.SelectorAnd() | rasp.SelectorOr():
            return [*selector_sops(selector.fst), *selector_sops(selector.snd)]
        case rasp.SelectorNot():
            return selector_sops(selector.inner)
    return []


def place(graph: ProgramGraph) -> Placement:
    sublayer: dict[str, int] = {}
    attention: dict[str, int] = {}
    for label in graph.sops():
        expr = graph.exprs[label]
        if isinstance(expr, (rasp.TokensType, rasp.IndicesType)):
            sublayer[label] = EMBEDDING
            continue
        earliest = 1 + max((sublayer[s.label] for s in reads(expr)), default=EMBEDDING)
        if isinstance(expr, (rasp.Aggregate, rasp.SelectorWidth)):
            at = earliest + earliest % 2  # the next attention sublayer (even)
            attention[label] = at
            sublayer[label] = at if isinstance(expr, rasp.Aggregate) else at + 1
        else:
            sublayer[label] = earliest + (1 - earliest % 2)  # the next MLP sublayer (odd)
    last = max(sublayer.values(), default=EMBEDDING)
    return Placement(sublayer, attention, max(1, last // 2 + 1))
