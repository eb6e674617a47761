"""The computational graph that edge patching and circuit discovery work on, built from the
model's hook schema (so it cannot drift from the model).

Senders write to the residual stream: the embedding (the stream block 0 reads, whatever made
it: token, position, embedding norm), every attention head (its `hook_result`) and every MLP
(`hook_mlp_out`). Receivers read it: each head's query, key and value inputs separately (keys
and values per key/value head under grouped-query attention), each MLP, and the logits (the
final norm's input). An edge joins a sender to a receiver that reads the stream after the
sender wrote: a head reads what the layers before it wrote; a sequential block's MLP also
reads its own layer's heads (resid_mid exists), a parallel block's MLP does not. Each block
of a weight-tied or looped model has its own hook points, so each iteration is its own node.

Attention kinds without queries and keys (pooling) have only value inputs; the Key-Value
Transformer's queries are its keys, so its heads have no query input.

The nodes and edges are the core's vocabulary (`workbench.sites`: `Sender`, `Receiver`,
`Edge`), whose names are what scores, the job store and exports are keyed by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from workbench import names
from workbench.config import ModelConfig, NormPlacement, QKForm
from workbench.errors import ConfigError, unknown
from workbench.options import Peg
from workbench.schema import hook_schema
from workbench.sites import Edge, Reads, Receiver, Sender

__all__ = ["Edge", "Graph", "Receiver", "Sender", "build_graph"]


@dataclass(frozen=True)
class Graph:
    senders: tuple[Sender, ...]
    receivers: tuple[Receiver, ...]
    edges: tuple[Edge, ...]
    mlp_reads_own_heads: bool  # sequential blocks: the MLP reads resid_mid
    post_norm: bool  # the stream passes through norms between sublayers (BERT, Vaswani)
    sender_index: dict[str, int] = field(repr=False, compare=False, default_factory=dict)
    receiver_index: dict[str, int] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.sender_index.update({s.name: i for i, s in enumerate(self.senders)})
        self.receiver_index.update({r.name: i for i, r in enumerate(self.receivers)})

    def check(self, edge: Edge | str) -> Edge:
        """The edge, or an error naming what is unknown."""
        edge = Edge.parse(edge) if isinstance(edge, str) else edge
        if edge.sender not in self.sender_index:
            raise unknown("sender", edge.sender, self.sender_index)
        if edge.receiver not in self.receiver_index:
            raise unknown("receiver", edge.receiver, self.receiver_index)
        sender = self.senders[self.sender_index[edge.sender]]
        receiver = self.receivers[self.receiver_index[edge.receiver]]
        if not _reads(sender, receiver, self.mlp_reads_own_heads):
            raise ConfigError(
                f"there is no edge {edge.name}: {edge.receiver} reads the stream before "
                f"{edge.sender} writes to it"
            )
        return edge

    def to_json(self) -> str:
        return json.dumps(
            {
                "senders": [s.name for s in self.senders],
                "receivers": [r.name for r in self.receivers],
                "edges": [e.name for e in self.edges],
            }
        )


def _reads(sender: Sender, receiver: Receiver, mlp_reads_own_heads: bool) -> bool:
    if sender.layer < receiver.layer:
        return True
    own_heads = receiver.kind is Reads.MLP and sender.head is not None
    return mlp_reads_own_heads and own_heads and sender.layer == receiver.layer


UNSUPPORTED = {
    "depth_weighted": "a DenseFormer stream is a learned average of block outputs, so a "
    "sender's contribution is re-weighted at every layer",
    "peg": "the positional encoding generator convolves the stream after block 0, mixing "
    "positions between senders and receivers",
}


def build_graph(cfg: ModelConfig) -> Graph:
    """The graph of a model with this config, from its hook schema."""
    if cfg.depth_weighted or isinstance(cfg.pos, Peg):
        why = UNSUPPORTED["depth_weighted" if cfg.depth_weighted else "peg"]
        raise ConfigError(f"edge patching is not defined for this model: {why}")
    hooks = {spec.name: spec for spec in hook_schema(cfg)}
    senders = [Sender.embed()]
    receivers: list[Receiver] = []
    for layer in range(cfg.n_layers):
        for kind in (Reads.Q, Reads.K, Reads.V):
            spec = hooks.get(names.attn(layer, kind.value))
            if spec is None or (kind is Reads.Q and cfg.layer(layer).qk_form is QKForm.SHARED):
                continue  # pooling has no q, k; the Key-Value Transformer's q are its k
            n = spec.shape[spec.dims.index("kv_head" if "kv_head" in spec.dims else "head")]
            assert n is not None  # only batch and positions are unsized
            receivers += [Receiver(layer, kind, h) for h in range(n)]
        senders += [Sender(layer, h) for h in range(cfg.n_heads)]
        if names.mlp_out(layer) in hooks:
            receivers.append(Receiver(layer, Reads.MLP))
            senders.append(Sender(layer))
    receivers.append(Receiver.logits(cfg.n_layers))
    own = names.resid_mid(0) in hooks
    edges = tuple(Edge.between(s, r) for r in receivers for s in senders if _reads(s, r, own))
    post = cfg.has_norm and cfg.norm_placement is NormPlacement.POST
    return Graph(tuple(senders), tuple(receivers), edges, own, post)
