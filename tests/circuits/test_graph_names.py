"""The graph's nodes are the core's typed vocabulary, and their names are the ones the job
store, exports and RASP ground truths already hold (spelled here as the old code spelled
them), so stored circuits still read."""

from __future__ import annotations

import pytest

from circuits.graph import build_graph
from workbench.presets import get_preset
from workbench.sites import Edge, Receiver, Sender


@pytest.mark.parametrize(
    "preset", ["gpt2-small-tiny", "llama-7b-tiny", "pythia-160m-tiny", "poolformer-patch4-tiny"]
)
def test_node_names_are_the_stored_names(preset: str) -> None:
    cfg = get_preset(preset).config
    graph = build_graph(cfg)
    for s in graph.senders:
        old = "embed" if s.layer < 0 else f"a{s.layer}.h{s.head}" if s.head is not None else None
        assert s.name == (old or f"m{s.layer}")
        assert Sender.parse(s.name) == s
    for r in graph.receivers:
        old = {"mlp": f"m{r.layer}", "logits": "logits"}.get(
            r.kind, f"a{r.layer}.h{r.head}.{r.kind}"
        )
        assert r.name == old
        assert Receiver.parse(r.name, cfg.n_layers) == r
    assert all(Edge.parse(e.name) == e for e in graph.edges)
    assert len(graph.sender_index) == len(graph.senders)  # names are unique
    assert len(graph.receiver_index) == len(graph.receivers)
