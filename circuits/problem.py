"""What edge patching and circuit discovery run on, in one frozen object: the model, the
prompts it runs (`target`), what replaces an activation, the metric, and how the run is
laid out (the graph, the attention mask, the memory budget of a chunk).

    problem = Problem(model, corrupted, Replacement.of("patch", source=clean), LogitDiff(a, w))
    acdc(problem, threshold=0.01); eap(problem); patch_edges(problem, [["a0.h1->logits"]])

`with_metric` gives the same problem scored by another metric (a discovery job's ACDC keeps
a distance small, and its EAP and faithfulness score the task metric)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import Tensor

from circuits.ablation import Replacement
from circuits.engine import DEFAULT_BUDGET
from circuits.graph import Graph, build_graph
from circuits.metrics import Metric
from workbench.model import Transformer
from workbench.staged import staged_model


@dataclass(frozen=True)
class Problem:
    model: Transformer
    target: Tensor  # tokens [batch, pos]: the prompts whose run is patched
    replacement: Replacement
    metric: Metric
    attention_mask: Tensor | None = None  # [batch, pos] of the target (and source) prompts
    memory_budget: int = DEFAULT_BUDGET  # bytes of activations one chunk may hold
    graph: Graph = field(default=None)  # type: ignore[assignment]  # None: the model's

    def __post_init__(self) -> None:
        staged_model(self.model, "edge patching and circuit discovery")
        if self.graph is None:
            object.__setattr__(self, "graph", build_graph(self.model.config))

    def with_metric(self, metric: Metric) -> Problem:
        return replace(self, metric=metric)
