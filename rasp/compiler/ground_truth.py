"""Stage 8: the ground-truth circuit of a compiled program, built of the core's circuit nodes
(`workbench.sites`: `Sender`, `Receiver`, `Edge`, the patching engine's graph's vocabulary)
and kept by their names (senders `embed`, `a{layer}.h{head}`, `m{layer}`; receivers
`a{layer}.h{head}.q|k|v`, `m{layer}`, `logits`), as the compiled checkpoint stores them.

It is read off the intermediate form, so it is what the weights do: a component writes the
residual dimensions its output matrix has nonzero columns for, and needs the dimensions that
carry information to it (a head's queries, keys and values separately; see `Head.reads`).
An edge carries information when the sender writes a dimension the receiver needs; the
embedding writes `one`, the tokens and the indices. Not information: an Aggregate head's
BOS term (it only supplies the default when nothing is selected), the queries and keys of a
head whose scores are the same for every pair of values (a TRUE selector), and the switch
that silences MLPs at the BOS position."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rasp import ltp, rasp
from rasp.compiler.blocks import Blocks
from workbench.sites import Edge, Reads, Receiver, Sender


@dataclass(frozen=True)
class GroundTruth:
    components: dict[str, list[str]]  # SOp label -> the heads / MLPs computing it
    edges: tuple[str, ...]  # "sender->receiver", in graph order of receivers

    def to_json(self) -> dict:
        return {"components": self.components, "edges": list(self.edges)}


def ground_truth(blocks: Blocks, output: rasp.SOp) -> GroundTruth:
    r = blocks.residual
    writers: dict[int, list[tuple[int, Sender]]] = {}  # dim -> (sublayer, sender)
    embedded = [r.one, *(i for (sop, _), i in r.categorical.items() if _is_input(sop))]
    for dim in embedded:
        writers.setdefault(dim, []).append((-1, Sender.embed()))
    components: dict[str, list[str]] = {}
    edges: list[Edge] = []

    def read(receiver: Receiver, dims: list[int], sublayer: int) -> None:
        senders = {s for d in dims for at, s in writers.get(d, []) if at < sublayer}
        edges.extend(Edge.between(s, receiver) for s in sorted(senders, key=lambda s: s.order))

    for layer, block in enumerate(blocks.layers):
        attn, mlp = 2 * layer, 2 * layer + 1
        heads = [Sender(layer, h) for h in range(len(block.heads))]
        for sender, head in zip(heads, block.heads, strict=True):
            components.setdefault(head.sop, []).append(sender.name)
            for kind in (Reads.Q, Reads.K, Reads.V):
                read(Receiver(layer, kind, sender.head), list(head.reads[kind.value]), attn)
        for sender, head in zip(heads, block.heads, strict=True):
            for dim in _nonzero(head.w_ov, axis=0):
                writers.setdefault(dim, []).append((attn, sender))
        if block.mlps:
            reads = sorted({d for m in block.mlps for d in m.reads})
            read(Receiver(layer, Reads.MLP), reads, mlp)
            for m in block.mlps:
                components.setdefault(m.sop, []).append(Sender(layer).name)
                for dim in _nonzero(m.w_out, axis=0):
                    writers.setdefault(dim, []).append((mlp, Sender(layer)))
    n_layers = len(blocks.layers)
    # a Readout is the unembedding itself: the logits read every SOp it scores
    outputs = output.sops if isinstance(output, ltp.Readout) else (output,)
    dims = [d for sop in outputs for d in r.dims_of(sop.label)]
    read(Receiver.logits(n_layers), dims, 2 * n_layers)
    return GroundTruth(components, tuple(e.name for e in edges))


def _is_input(sop: str) -> bool:
    return sop in (rasp.tokens.label, rasp.indices.label)


def _nonzero(matrix: np.ndarray, axis: int) -> list[int]:
    """Rows (axis=1: summed over columns) or columns (axis=0) with a nonzero entry."""
    return np.flatnonzero(np.abs(matrix).sum(axis=axis)).tolist()
