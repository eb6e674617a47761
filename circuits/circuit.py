"""What every discovery method returns (`Circuit`), and what they share: edges in the graph's
order, and a node's score from its edges'."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from circuits.graph import Edge, Graph

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Circuit:
    method: str
    edges: tuple[str, ...]  # the circuit: edges kept
    scores: dict[str, float]  # every edge of the graph (nodes, for node-level methods)
    metric: str
    settings: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int) -> list[str]:
        """The k highest-scoring edges."""
        return sorted(self.scores, key=lambda e: -self.scores[e])[:k]

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "edges": list(self.edges),
                "scores": self.scores,
                "metric": self.metric,
                "settings": self.settings,
            }
        )


def in_graph_order(graph: Graph, edges: list[str]) -> tuple[str, ...]:
    """Edge names in the order of the graph's edges."""
    order = {e.name: i for i, e in enumerate(graph.edges)}
    return tuple(sorted(edges, key=order.__getitem__))


def node_scores(circuit: Circuit, graph: Graph) -> dict[str, float]:
    """Each sender (embedding, head, MLP) scored by the sum of its out-edges' scores."""
    out = {s.name: 0.0 for s in graph.senders}
    for name, score in circuit.scores.items():
        out[Edge.parse(name).sender] += score
    return out
