"""Stage 3: which sublayer computes each operation. Sublayer 2l is block l's attention and
2l + 1 its MLP; the embedding is -1. An Aggregate needs an attention sublayer, a Map,
SequenceMap or Full an MLP sublayer, and a SelectorWidth an attention sublayer followed by
the MLP of the same block. Each operation goes to the earliest sublayer of its kind after
everything it reads (as soon as possible), which gives the fewest layers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from rasp import ltp, rasp
from rasp.compiler.graph import ProgramGraph

EMBEDDING = -1


@dataclass(frozen=True)
class Placement:
    sublayer: dict[str, int]  # SOp label -> the sublayer that writes it (-1: the embedding)
    attention: dict[str, int]  # Aggregate / SelectorWidth label -> its attention sublayer
    n_layers: int

    def heads(self, layer: int) -> list[str]:
        return list(self._heads.get(layer, ()))

    def mlps(self, layer: int) -> list[str]:
        """Maps, SequenceMaps, Fulls and the lookup half of SelectorWidths of this block."""
        return list(self._mlps.get(layer, ()))

    # grouped once: a program thousands of layers deep is one pass, not one per layer
    @cached_property
    def _heads(self) -> dict[int, list[str]]:
        return _by_layer((label, at) for label, at in self.attention.items())

    @cached_property
    def _mlps(self) -> dict[int, list[str]]:
        return _by_layer((label, at) for label, at in self.sublayer.items() if at % 2 == 1)


def _by_layer(placed: Iterable[tuple[str, int]]) -> dict[int, list[str]]:
    """Labels grouped by the layer of their sublayer, in placement order."""
    layers: dict[int, list[str]] = {}
    for label, sublayer in placed:
        layers.setdefault(sublayer // 2, []).append(label)
    return layers


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
        case rasp.KeyQuerySelector():
            return [selector.keys, selector.queries]
        case rasp.SelectorCombination():
            return [*selector_sops(selector.fst), *selector_sops(selector.snd)]
        case rasp.SelectorNot():
            return selector_sops(selector.inner)
    return []


def place(graph: ProgramGraph) -> Placement:
    sublayer: dict[str, int] = {}
    attention: dict[str, int] = {}
    for label in graph.sops():
        expr = graph.sop(label)
        if isinstance(expr, (rasp.TokensType, rasp.IndicesType)):
            sublayer[label] = EMBEDDING
            continue
        if isinstance(expr, ltp.Readout):  # the output: the unembedding computes it
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
