"""Circuit discovery on the edge-patching engine: ACDC, edge attribution patching (EAP),
EAP with integrated gradients (EAP-IG), node-level versions, and random and
activation-magnitude baselines. Each returns a `Circuit`: the edges kept, a score for every
edge of the graph (higher: more important), the settings and the metric.

- ACDC (Conmy et al. 2023): receivers in reverse topological order (the logits first, then
  each layer's MLP, then its heads' q, k, v inputs), each receiver's incoming edges latest
  sender first; an edge is removed (ablated) when removing it raises the distance to the
  full model by less than `threshold`. The result is exactly the sequential algorithm's,
  evaluated in batches: a batch tries removing the next K edges in that order cumulatively
  (across receivers), which is exact up to the first edge that must stay, and the next
  batch starts after it.
- EAP (Syed et al. 2023): one forward and one backward pass. The score of an edge is the
  first-order change of the metric when the receiver's input along that edge is replaced:
  (replacement - current sender output) . d metric / d receiver input, summed over prompts
  and positions.
- EAP-IG (Hanna et al. 2024): the same, with the gradients averaged over `steps` points on
  the straight line from the target's embeddings to the source's (integrated gradients over
  the inputs).
- Node versions score senders (heads, MLPs, the embedding) by the sum of their out-edges'
  scores (EAP) or by ACDC over all of a sender's out-edges at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.edges import EdgePatcher, sender_hooks, sender_outputs
from circuits.engine import DEFAULT_BUDGET
from circuits.graph import Edge, Graph, build_graph
from circuits.metrics import Metric, read_positions
from workbench.errors import InputError
from workbench.model import Transformer

Progress = Callable[[int, int], None]  # (done, total)
# The most edges one ACDC pass tries. More settles more edges per pass when nearly every edge
# is removed; fewer wastes fewer configurations after a mispredicted one. 8 was the fastest
# of 3, 4, 8 and 16 on the benchmark's three cases together (docs/benchmarks.md).
ACDC_BATCH = 8


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


# ----- ACDC ---------------------------------------------------------------------------------


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
    model: Transformer,
    target: Tensor,
    replacement: Replacement,
    distance: Metric,
    *,
    threshold: float,
    graph: Graph | None = None,
    batch_size: int = ACDC_BATCH,
    memory_budget: int = DEFAULT_BUDGET,
    attention_mask: Tensor | None = None,
    progress: Progress | None = None,
    state: dict | None = None,
) -> Circuit:
    """ACDC with `distance` (0 for the full model, larger when worse: `OutputDistance`, or a
    task metric turned into a loss). `state` resumes a run: pass the dict a previous call
    filled in (`removed`, `scores`, `distance`), and it is updated after every batch,
    before `progress` is called."""
    if threshold < 0:
        raise InputError(f"threshold must be >= 0, got {threshold}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    patcher = EdgePatcher(
        model,
        target,
        replacement,
        distance,
        graph=graph,
        memory_budget=memory_budget,
        attention_mask=attention_mask,
    )
    graph = patcher.graph
    state = {} if state is None else state
    units = [(e, [e]) for e in acdc_order(graph)]
    receivers = {r.name: r for r in graph.receivers}

    def alike(name: str) -> tuple[str, str, int]:  # same sender, same kind of reader
        edge = graph.check(name)
        receiver = receivers[edge.receiver]
        return edge.sender, receiver.kind, receiver.layer

    _prune(patcher, units, threshold, batch_size, state, progress, alike)
    gone = set(state["removed"])
    scores = state["scores"]
    kept = tuple(e.name for e in graph.edges if e.name not in gone)
    settings = {"threshold": threshold, "ablation": replacement.ablation.value}
    return Circuit("acdc", kept, dict(scores), distance.name, settings)


def _prune(
    patcher: EdgePatcher,
    units: list[tuple[str, list[str]]],
    threshold: float,
    batch_size: int,
    state: dict,
    progress: Progress | None = None,
    alike: Callable[[str], Hashable] | None = None,
) -> None:
    """ACDC's sequential pass over `units` (a name and the edges it removes), in order: a
    unit is removed when that raises the distance by less than `threshold`.

    A batch decides several units at once by speculation, and stays exact: each unit is
    tried on top of the circuit that the decisions predicted for the units before it leave
    (configuration i: the removed edges, the earlier units predicted removed, and unit i).
    Decisions are read in order while they match the predictions; the first that does not
    is still exact (its own context was right) and ends the batch. A unit is predicted as a
    batch's tail, past such a mismatch, found it; else as the last decided unit `alike` it
    (an edge: the same sender into the same kind of reader in the same layer); else removed.
    The batch
    grows after a batch without a mismatch and shrinks to what settled after one. `state`
    holds `removed` (edges), `scores` (per unit) and `distance`, updated after every batch;
    units already scored are skipped."""
    removed: list[str] = state.setdefault("removed", [])
    scores: dict[str, float] = state.setdefault("scores", {})
    current = _finite(float(patcher.scores([[]], base=removed)[0]), "the starting circuit")
    state["distance"] = current
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
        state["distance"] = current
        if progress is not None:
            progress(len(scores), len(units))


def _finite(value: float, what: str) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(
            f"the metric is {value} for {what}: ACDC needs a finite distance (check the metric "
            "and that the prompts are valid)"
        )
    return value


# ----- attribution patching ------------------------------------------------------------------


class _GradReader:
    """Gives every receiver its own copy of the stream plus a zero tensor whose gradient is
    d metric / d (that receiver's input)."""

    def __init__(self, graph: Graph, n_layers: int, toward: _Toward | None = None) -> None:
        self.graph, self.n_layers, self.toward = graph, n_layers, toward
        self.deltas: dict[tuple[int, str], Tensor] = {}
        self.groups: dict[tuple[int, str], list[int]] = {}
        for i, r in enumerate(graph.receivers):
            self.groups.setdefault((r.layer, r.kind), []).append(i)

    def _add(self, layer: int, kind: str, x: Tensor, per_head: bool) -> Tensor:
        receivers = self.groups.get((layer, kind), [])
        if not receivers:
            return x
        if self.toward is not None:
            x = x + self.toward.shift(self.graph.receivers[receivers[0]].name)
        shape = (*x.shape[:2], len(receivers), x.shape[-1]) if per_head else x.shape
        delta = torch.zeros(shape, dtype=x.dtype, device=x.device, requires_grad=True)
        self.deltas[(layer, kind)] = delta
        return (x[:, :, None, :] if per_head else x) + delta

    def attention(self, layer: int, x: Tensor):
        return tuple(self._add(layer, kind, x, True) for kind in "qkv")

    def mlp(self, layer: int, x: Tensor) -> Tensor:
        return self._add(layer, "mlp", x, False)

    def final(self, x: Tensor) -> Tensor:
        return self._add(self.n_layers, "logits", x, False)

    def gradients(self, x_like: Tensor) -> Tensor:
        """d metric / d receiver input, [batch, pos, receiver, d_model] in graph order."""
        out = x_like.new_zeros(*x_like.shape[:2], len(self.graph.receivers), x_like.shape[-1])
        for (layer, kind), delta in self.deltas.items():
            grad = delta.grad if delta.grad is not None else torch.zeros_like(delta)
            index = self.groups[(layer, kind)]
            out[:, :, index] = grad if grad.ndim == 4 else grad[:, :, None]
        return out


class _Toward:
    """EAP-IG over activations: every edge moved the fraction `alpha` from the current sender
    output to its replacement, so a receiver reads its stream plus alpha * sum over its
    senders of (replacement - current output on this run)."""

    def __init__(self, graph: Graph, alpha: float, swapped: Tensor) -> None:
        self.graph, self.alpha, self.swapped = graph, alpha, swapped  # [b, pos, sender, d]
        self.current: dict[str, Tensor] = {}  # sender hook -> activation, filled by hooks
        self.senders: dict[str, list[int]] = {}
        for e in graph.edges:
            self.senders.setdefault(e.receiver, []).append(graph.sender_index[e.sender])

    def shift(self, receiver: str) -> Tensor:
        index = self.senders[receiver]
        current = sender_outputs(self.graph, self.current, index)
        return self.alpha * (self.swapped[:, :, index] - current).sum(dim=2)


def _receiver_gradients(
    model: Transformer,
    graph: Graph,
    metric: Metric,
    tokens: Tensor,
    attention_mask: Tensor | None,
    embed_shift: Callable[[Tensor], Tensor] | None = None,
    toward: _Toward | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """d metric / d (each receiver's input) [batch, pos, receiver, d_model], and the senders'
    outputs on this run (no weight gradients; only the position the metric reads is
    unembedded)."""
    reader = _GradReader(graph, model.config.n_layers, toward)
    acts: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> None:
        acts[hook.name] = act.detach()
        if toward is not None:
            toward.current[hook.name] = act

    reading = read_positions(metric)
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        hooks = [(name, keep) for name in sender_hooks(graph)]
        with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
            stream = model.start(tokens, attention_mask)
            if embed_shift is not None:
                stream = _replace_state(stream, embed_shift(_state(stream)))
            logits = model.finish(stream, reader, reading.at, reading.columns)
            reading.metric(logits[None])[0].backward()
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return reader.gradients(_state(stream)).detach(), acts


def _state(stream) -> Tensor:
    return stream.state[0] if isinstance(stream.state, tuple) else stream.state


def _replace_state(stream, x: Tensor):
    from dataclasses import replace

    if isinstance(stream.state, tuple):
        return replace(stream, state=(x, *stream.state[1:]))
    return replace(stream, state=x)


def _replacements(
    model: Transformer,
    graph: Graph,
    target: Tensor,
    replacement: Replacement,
    attention_mask: Tensor | None,
) -> dict[str, Tensor]:
    """Each sender hook's replacement activation (one run of the source or reference)."""
    replacement.check(target)
    with torch.inference_mode():
        values, _ = replacement.values(model, sender_hooks(graph), target.shape[0], attention_mask)
    return {h: v.clone() for h, v in values.items()}


def _change(graph: Graph, values: dict[str, Tensor], current: dict[str, Tensor]) -> Tensor:
    """replacement - current output of every sender [batch, pos, sender, d_model]."""
    zero = torch.zeros((), dtype=next(iter(current.values())).dtype)
    hooks = sender_hooks(graph)
    swapped = {h: values.get(h, zero.to(current[h].device)).expand_as(current[h]) for h in hooks}
    return sender_outputs(graph, swapped) - sender_outputs(graph, current)


def _edge_scores(graph: Graph, change: Tensor, grads: Tensor) -> dict[str, float]:
    table = torch.einsum("bpud,bprd->ur", change, grads)  # [sender, receiver]
    s, r = graph.sender_index, graph.receiver_index
    senders = torch.tensor([s[e.sender] for e in graph.edges], device=table.device)
    receivers = torch.tensor([r[e.receiver] for e in graph.edges], device=table.device)
    values = table[senders, receivers].tolist()
    return {e.name: v for e, v in zip(graph.edges, values, strict=True)}


def eap(
    model: Transformer,
    target: Tensor,
    replacement: Replacement,
    metric: Metric,
    *,
    graph: Graph | None = None,
    top_k: int | None = None,
    attention_mask: Tensor | None = None,
) -> Circuit:
    """Edge attribution patching; the circuit is the `top_k` edges by |score| (all if None).
    Scores are signed first-order metric changes; `Circuit.scores` holds their magnitude."""
    graph = build_graph(model.config) if graph is None else graph
    target = target.to(model.cfg.device)
    values = _replacements(model, graph, target, replacement, attention_mask)
    grads, current = _receiver_gradients(model, graph, metric, target, attention_mask)
    scores = _edge_scores(graph, _change(graph, values, current), grads)
    return _attribution("eap", graph, scores, metric, top_k, {})


def eap_ig(
    model: Transformer,
    target: Tensor,
    replacement: Replacement,
    metric: Metric,
    *,
    steps: int = 5,
    over: str = "inputs",
    graph: Graph | None = None,
    top_k: int | None = None,
    attention_mask: Tensor | None = None,
) -> Circuit:
    """EAP with integrated gradients, k = 1..steps, alpha = k / steps.
    - over="inputs": the receivers' gradients averaged over the embeddings target + alpha
      (source - target); needs a source (`Replacement.of("patch", source=...)`).
    - over="activations": every edge interpolated alpha of the way from the current sender
      output to its replacement (any ablation); each step's scores use that step's current
      outputs and gradients, averaged. By completeness the scores then sum to about
      metric(every edge replaced) - metric(target). Additive streams only (not post-norm)."""
    if over not in ("inputs", "activations"):
        raise InputError(f"over must be 'inputs' or 'activations', got {over!r}")
    if over == "inputs" and replacement.source is None:
        raise InputError("eap-ig interpolates between target and source: use ablation 'patch'")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    graph = build_graph(model.config) if graph is None else graph
    target = target.to(model.cfg.device)
    values = _replacements(model, graph, target, replacement, attention_mask)
    if over == "activations":
        scores = _ig_activations(model, graph, metric, target, values, steps, attention_mask)
        settings = {"steps": steps, "over": over}
        return _attribution("eap-ig", graph, scores, metric, top_k, settings)
    with torch.inference_mode():
        _, cache = model.run_with_cache(
            target, names_filter=sender_hooks(graph), attention_mask=attention_mask
        )
    change = _change(graph, values, {h: cache[h].clone() for h in sender_hooks(graph)})
    with torch.inference_mode():
        source_embed = _state(model.start(replacement.source.to(model.cfg.device), attention_mask))
        target_embed = _state(model.start(target.to(model.cfg.device), attention_mask))
    shift = (source_embed - target_embed).clone()
    total = None
    for k in range(1, steps + 1):
        alpha = k / steps
        grads, _ = _receiver_gradients(
            model, graph, metric, target, attention_mask, lambda x, a=alpha: x + a * shift
        )
        total = grads if total is None else total + grads
    scores = _edge_scores(graph, change, total / steps)
    return _attribution("eap-ig", graph, scores, metric, top_k, {"steps": steps, "over": over})


def _ig_activations(
    model: Transformer,
    graph: Graph,
    metric: Metric,
    target: Tensor,
    values: dict[str, Tensor],
    steps: int,
    attention_mask: Tensor | None,
) -> dict[str, float]:
    if graph.post_norm:
        raise InputError(
            "eap-ig over activations needs an additive stream; a post-norm model's stream "
            "passes through norms between sublayers: use over='inputs'"
        )
    hooks = sender_hooks(graph)
    with torch.inference_mode():
        _, cache = model.run_with_cache(target, names_filter=hooks, attention_mask=attention_mask)
    zero = torch.zeros((), dtype=cache[hooks[0]].dtype, device=cache[hooks[0]].device)
    swapped = sender_outputs(graph, {h: values.get(h, zero).expand_as(cache[h]) for h in hooks})
    swapped = swapped.clone()
    total: dict[str, float] = {}
    for k in range(1, steps + 1):
        toward = _Toward(graph, k / steps, swapped)
        grads, current = _receiver_gradients(
            model, graph, metric, target, attention_mask, toward=toward
        )
        change = swapped - sender_outputs(graph, current)
        for edge, value in _edge_scores(graph, change, grads).items():
            total[edge] = total.get(edge, 0.0) + value / steps
    return total


def _attribution(
    method: str,
    graph: Graph,
    signed: dict[str, float],
    metric: Metric,
    top_k: int | None,
    settings: dict[str, Any],
) -> Circuit:
    scores = {e: abs(v) for e, v in signed.items()}
    ranked = sorted(scores, key=lambda e: -scores[e])
    kept = ranked if top_k is None else ranked[:top_k]
    order = {e.name: i for i, e in enumerate(graph.edges)}
    settings = {**settings, "top_k": top_k, "signed": signed}
    return Circuit(method, tuple(sorted(kept, key=order.get)), scores, metric.name, settings)


# ----- node level and baselines --------------------------------------------------------------


def node_scores(circuit: Circuit, graph: Graph) -> dict[str, float]:
    """Each sender (embedding, head, MLP) scored by the sum of its out-edges' scores."""
    out = {s.name: 0.0 for s in graph.senders}
    for name, score in circuit.scores.items():
        out[Edge.parse(name).sender] += score
    return out


def acdc_nodes(
    model: Transformer,
    target: Tensor,
    replacement: Replacement,
    distance: Metric,
    *,
    threshold: float,
    graph: Graph | None = None,
    batch_size: int = ACDC_BATCH,
    memory_budget: int = DEFAULT_BUDGET,
    attention_mask: Tensor | None = None,
) -> Circuit:
    """Node-level ACDC: senders latest first, each removed (all its out-edges ablated) when
    that raises the distance by less than `threshold`; batched like `acdc`."""
    if threshold < 0:
        raise InputError(f"threshold must be >= 0, got {threshold}")
    patcher = EdgePatcher(
        model,
        target,
        replacement,
        distance,
        graph=graph,
        memory_budget=memory_budget,
        attention_mask=attention_mask,
    )
    graph = patcher.graph
    out_edges: dict[str, list[str]] = {s.name: [] for s in graph.senders}
    for e in graph.edges:
        out_edges[e.sender].append(e.name)
    units = [(s.name, out_edges[s.name]) for s in reversed(graph.senders)]
    state: dict = {}
    _prune(patcher, units, threshold, batch_size, state)
    scores = state["scores"]
    kept = [name for name, _ in units if scores[name] >= threshold]  # ACDC's rule
    edges = tuple(e.name for e in graph.edges if e.sender in kept)
    settings = {"threshold": threshold, "ablation": replacement.ablation.value, "nodes": kept}
    return Circuit("acdc-nodes", edges, scores, distance.name, settings)


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
