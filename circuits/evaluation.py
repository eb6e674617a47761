"""How good a discovered circuit is: against a ground truth (ROC curve, AUC, true and false
positive rates per threshold) and by faithfulness (the metric recovered as a function of the
number of edges kept, with everything else ablated)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from circuits.circuit import Circuit
from circuits.edges import EdgePatcher
from circuits.graph import Graph
from circuits.problem import Problem
from workbench.errors import InputError


@dataclass(frozen=True)
class ROC:
    thresholds: tuple[float, ...]  # decreasing; an edge is predicted when its score >= it
    tpr: tuple[float, ...]
    fpr: tuple[float, ...]
    auc: float

    def to_json(self) -> str:
        return json.dumps(vars(self))


def check_ground_truth(truth: Iterable[str], graph: Graph) -> set[str]:
    """The ground-truth edges, each checked to be an edge of the graph."""
    edges = set(truth)
    names = {e.name for e in graph.edges}
    unknown = sorted(edges - names)
    if unknown:
        raise InputError(
            f"the ground truth names {len(unknown)} edges the graph does not have, e.g. "
            f"{unknown[0]!r}; build it for the same model (circuits.graph.build_graph)"
        )
    if not edges:
        raise InputError("the ground truth is empty: it needs at least one edge")
    return edges


def roc(circuit: Circuit, truth: Iterable[str], graph: Graph) -> ROC:
    """The ROC curve of the circuit's edge scores against the ground-truth edges, over every
    edge of the graph; ties share a threshold. AUC by the trapezoid rule."""
    positives = check_ground_truth(truth, graph)
    names = [e.name for e in graph.edges]
    missing = [n for n in names if n not in circuit.scores]
    if missing:
        raise InputError(f"the circuit has no score for {len(missing)} edges, e.g. {missing[0]!r}")
    n_pos, n_neg = len(positives), len(names) - len(positives)
    if n_neg == 0:
        raise InputError("every edge is in the ground truth: there are no negatives to rank")
    by_score = sorted(names, key=lambda n: -circuit.scores[n])
    thresholds, tpr, fpr = [float("inf")], [0.0], [0.0]
    tp = fp = 0
    for i, name in enumerate(by_score):
        tp += name in positives
        fp += name not in positives
        last = i + 1 == len(by_score)
        if last or circuit.scores[by_score[i + 1]] != circuit.scores[name]:
            thresholds.append(circuit.scores[name])
            tpr.append(tp / n_pos)
            fpr.append(fp / n_neg)
    auc = sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(fpr)))
    return ROC(tuple(thresholds), tuple(tpr), tuple(fpr), auc)


@dataclass(frozen=True)
class Faithfulness:
    edges_kept: tuple[int, ...]
    metric: tuple[float, ...]  # with only the top edges kept, everything else ablated
    full: float  # the full model's metric
    ablated: float  # every edge ablated
    recovered: tuple[float, ...]  # (metric - ablated) / (full - ablated)

    def to_json(self) -> str:
        return json.dumps(vars(self))


def faithfulness(problem: Problem, circuit: Circuit, counts: Sequence[int]) -> Faithfulness:
    """The metric with the circuit's `k` highest-scoring edges kept and every other edge
    ablated, for each k in `counts`: one batched run for the whole curve."""
    graph = problem.graph
    patcher = EdgePatcher(problem)
    ranked = circuit.top(len(circuit.scores))
    names = [e.name for e in graph.edges]
    configs = []
    for k in counts:
        top = set(ranked[:k])
        configs.append([n for n in names if n not in top])
    values = patcher.scores([[], names, *configs]).tolist()
    full, ablated, curve = values[0], values[1], values[2:]
    span = full - ablated
    recovered = tuple((v - ablated) / span if span else float("nan") for v in curve)
    return Faithfulness(tuple(counts), tuple(curve), full, ablated, recovered)
