"""ACDC (Conmy et al. 2023) on the edge-patching engine, edge- and node-level.

Receivers go in reverse topological order (the logits first, then each layer's MLP, then its
heads' q, k, v inputs), each receiver's incoming edges latest sender first; an edge is
removed (ablated) when removing it raises the distance to the full model by less than
`threshold`. The result is exactly the sequential algorithm's, evaluated in batches: a batch
tries removing the next K edges in that order cumulatively (across receivers), which is
exact up to the first edge that must stay, and the next batch starts after it.

A run's progress is an `AcdcState` (the edges removed, the scores so far, the distance): a
job saves it after every batch and resumes from it (`state=`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from circuits.circuit import Circuit, Progress
from circuits.edges import EdgePatcher
from circuits.graph import Edge, Graph
from circuits.problem import Problem
from workbench.errors import InputError

# The most edges one ACDC pass tries. More settles more edges per pass when nearly every edge
# is removed; fewer wastes fewer configurations after a mispredicted one. 8 was the fastest
# of 3, 4, 8 and 16 on the benchmark's three cases together (docs/benchmarks.md).
ACDC_BATCH = 8


@dataclass(frozen=True)
class AcdcState:
    """Where an ACDC run stands: the edges removed so far (in order), the score of every
    unit decided (an edge, or a sender for node-level ACDC; in order), and the distance of
    the circuit left (None before the first pass). The job store keeps it as JSON."""

    removed: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    distance: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": list(self.removed),
            "scores": dict(self.scores),
            "distance": self.distance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AcdcState:
        """The state as `to_json` wrote it; {} (a job that never finished a batch): a fresh one."""
        return cls(
            tuple(data.get("removed", ())), dict(data.get("scores", {})), data.get("distance")
        )


def receiver_order(graph: Graph) -> list[str]:
    """Receivers in reverse topological order: logits, then per layer (last first) the MLP
    before the heads (a sequential block's MLP reads its own heads)."""
    rank = {"logits": 0, "mlp": 1, "q": 2, "k": 2, "v": 2}
    order = sorted(graph.receivers, key=lambda r: (-r.layer, rank[r.kind], r.name))
    return [r.name for r in order]


def acdc_order(graph: Graph) -> list[str]:
    """Every edge in ACDC's order: receivers in `receiver_order`, each receiver's incoming
    edges latest sender first."""
    into: dict[str, list[Edge]] = {}
    for e in graph.edges:
        into.setdefault(e.receiver, []).append(e)
    index = graph.sender_index
    return [
        e.name
        for r in receiver_order(graph)
        for e in sorted(into.get(r, []), key=lambda e: -index[e.sender])
    ]


def acdc(
    problem: Problem,
    *,
    threshold: float,
    batch_size: int = ACDC_BATCH,
    progress: Progress | None = None,
    state: AcdcState | None = None,
    on_state: Callable[[AcdcState], None] | None = None,
) -> Circuit:
    """ACDC keeping `problem.metric` small (a distance: 0 for the full model, larger when
    worse: `OutputDistance`, or a task metric turned into a loss). `state` resumes a run
    from where a previous call's `on_state` (called after every batch, before `progress`)
    left it."""
    if threshold < 0:
        raise InputError(f"threshold must be >= 0, got {threshold}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    patcher = EdgePatcher(problem)
    graph = problem.graph
    units = [(e, [e]) for e in acdc_order(graph)]
    receivers = {r.name: r for r in graph.receivers}

    def alike(name: str) -> tuple[str, str, int]:  # same sender, same kind of reader
        edge = graph.check(name)
        receiver = receivers[edge.receiver]
        return edge.sender, receiver.kind, receiver.layer

    end = _prune(patcher, units, threshold, batch_size, state, on_state, progress, alike)
    gone = set(end.removed)
    kept = tuple(e.name for e in graph.edges if e.name not in gone)
    settings = {"threshold": threshold, "ablation": problem.replacement.ablation.value}
    return Circuit("acdc", kept, dict(end.scores), problem.metric.name, settings)


def acdc_nodes(problem: Problem, *, threshold: float, batch_size: int = ACDC_BATCH) -> Circuit:
    """Node-level ACDC: senders latest first, each removed (all its out-edges ablated) when
    that raises the distance by less than `threshold`; batched like `acdc`."""
    if threshold < 0:
        raise InputError(f"threshold must be >= 0, got {threshold}")
    patcher = EdgePatcher(problem)
    graph = problem.graph
    out_edges: dict[str, list[str]] = {s.name: [] for s in graph.senders}
    for e in graph.edges:
        out_edges[e.sender].append(e.name)
    units = [(s.name, out_edges[s.name]) for s in reversed(graph.senders)]
    scores = _prune(patcher, units, threshold, batch_size).scores
    kept = [name for name, _ in units if scores[name] >= threshold]  # ACDC's rule
    edges = tuple(e.name for e in graph.edges if e.sender in kept)
    ablation = problem.replacement.ablation.value
    settings = {"threshold": threshold, "ablation": ablation, "nodes": kept}
    return Circuit("acdc-nodes", edges, dict(scores), problem.metric.name, settings)


def _prune(
    patcher: EdgePatcher,
    units: list[tuple[str, list[str]]],
    threshold: float,
    batch_size: int,
    start: AcdcState | None = None,
    on_state: Callable[[AcdcState], None] | None = None,
    progress: Progress | None = None,
    alike: Callable[[str], Hashable] | None = None,
) -> AcdcState:
    """ACDC's sequential pass over `units` (a name and the edges it removes), in order: a
    unit is removed when that raises the distance by less than `threshold`.

    A batch decides several units at once by speculation, and stays exact: each unit is
    tried on top of the circuit that the decisions predicted for the units before it leave
    (configuration i: the removed edges, the earlier units predicted removed, and unit i).
    Decisions are read in order while they match the predictions; the first that does not
    is still exact (its own context was right) and ends the batch. A unit is predicted as a
    batch's tail, past such a mismatch, found it; else as the last decided unit `alike` it
    (an edge: the same sender into the same kind of reader in the same layer); else removed.
    The batch grows after a batch without a mismatch and shrinks to what settled after one.
    Units `start` scored already are skipped; `on_state` gets the state after every batch."""
    start = start or AcdcState()
    removed, scores = list(start.removed), dict(start.scores)
    current = _finite(float(patcher.scores([[]], base=removed)[0]), "the starting circuit")
    queue = [u for u in units if u[0] not in scores]  # a resumed run skips decided units
    guess: dict[str, bool] = {}  # unit -> predicted kept, from an earlier batch's tail
    decided: dict[Hashable, bool] = {}  # the last decision per `alike` key

    def predicted(name: str) -> bool:
        if name in guess:
            return guess[name]
        return decided.get(alike(name), False) if alike is not None else False

    size = batch_size
    while queue:
        trial = queue[:size]
        configs, refs, chain, ref = [], [], [], -1  # refs: the config before (-1: current)
        predictions: list[bool] = []
        for name, unit_edges in trial:
            configs.append(chain + unit_edges)  # each on top of `removed`
            refs.append(ref)
            predictions.append(predicted(name))
            if not predictions[-1]:
                chain, ref = configs[-1], len(configs) - 1
        values = [_finite(v, "a trial") for v in patcher.scores(configs, base=removed).tolist()]
        settled = len(trial)
        for i, (name, _) in enumerate(trial):
            delta = values[i] - (current if refs[i] < 0 else values[refs[i]])
            kept = delta >= threshold  # removing it costs too much: keep it
            if i >= settled:  # past a mismatch: the context was off by one decision
                guess[name] = kept
                continue
            scores[name] = delta
            guess.pop(name, None)
            if alike is not None:
                decided[alike(name)] = kept
            if not kept:
                removed.extend(trial[i][1])
                current = values[i]
            if kept != predictions[i]:
                settled = i + 1
        queue = queue[settled:]
        size = min(batch_size, 2 * size if settled == len(trial) else settled)
        if on_state is not None:
            on_state(AcdcState(tuple(removed), dict(scores), current))
        if progress is not None:
            progress(len(scores), len(units))
    return AcdcState(tuple(removed), scores, current)


def _finite(value: float, what: str) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(
            f"the metric is {value} for {what}: ACDC needs a finite distance (check the metric "
            "and that the prompts are valid)"
        )
    return value
