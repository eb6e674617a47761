"""Baselines for discovered circuits: random scores (the chance line of an ROC curve) and
each edge scored by the magnitude of its sender's output."""

from __future__ import annotations

import torch
from torch import Tensor

from circuits.circuit import Circuit
from circuits.edges import sender_hooks, sender_outputs
from circuits.graph import Graph, build_graph
from workbench.model import Transformer


def random_baseline(graph: Graph, seed: int = 0, top_k: int | None = None) -> Circuit:
    """Uniform random scores (a seeded generator): the chance line of an ROC curve."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(len(graph.edges), generator=gen).tolist()
    scores = {e.name: v for e, v in zip(graph.edges, values, strict=True)}
    kept = sorted(scores, key=lambda e: -scores[e])[: top_k or len(scores)]
    return Circuit("random", tuple(kept), scores, "none", {"seed": seed, "top_k": top_k})


def magnitude_baseline(
    model: Transformer,
    target: Tensor,
    *,
    graph: Graph | None = None,
    top_k: int | None = None,
    attention_mask: Tensor | None = None,
) -> Circuit:
    """Each edge scored by the mean norm of its sender's output on the target prompts."""
    graph = build_graph(model.config) if graph is None else graph
    hooks = sender_hooks(graph)
    with torch.inference_mode():
        _, cache = model.run_with_cache(target, names_filter=hooks, attention_mask=attention_mask)
        outputs = sender_outputs(graph, {h: cache[h] for h in hooks})
        norms = outputs.norm(dim=-1).mean(dim=(0, 1)).tolist()  # [sender]
    scores = {e.name: norms[graph.sender_index[e.sender]] for e in graph.edges}
    kept = sorted(scores, key=lambda e: -scores[e])[: top_k or len(scores)]
    return Circuit("magnitude", tuple(kept), scores, "none", {"top_k": top_k})
