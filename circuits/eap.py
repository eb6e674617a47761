"""Edge attribution patching on the edge-patching engine: EAP and EAP-IG.

- EAP (Syed et al. 2023): one forward and one backward pass. The score of an edge is the
  first-order change of the metric when the receiver's input along that edge is replaced:
  (replacement - current sender output) . d metric / d receiver input, summed over prompts
  and positions.
- EAP-IG (Hanna et al. 2024): the same, with the gradients averaged over `steps` points on
  the straight line from the target's embeddings to the source's (integrated gradients over
  the inputs), or with every edge moved part of the way to its replacement (over the
  activations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.circuit import Circuit, in_graph_order
from circuits.edges import sender_hooks, sender_outputs
from circuits.engine import Hooks
from circuits.graph import Graph
from circuits.metrics import Metric, read_positions
from circuits.options import IgOver, parse
from circuits.problem import Problem
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.staged import StreamReader


class _GradReader(StreamReader):
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

    def attention(self, layer: int, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = (self._add(layer, kind, x, True) for kind in "qkv")
        return q, k, v

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
        hooks: Hooks = [(name, keep) for name in sender_hooks(graph)]
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


def eap(problem: Problem, *, top_k: int | None = None) -> Circuit:
    """Edge attribution patching of `problem.metric`; the circuit is the `top_k` edges by
    |score| (all if None). Scores are signed first-order metric changes; `Circuit.scores`
    holds their magnitude."""
    p, graph = problem, problem.graph
    target = p.target.to(p.model.cfg.device)
    values = _replacements(p.model, graph, target, p.replacement, p.attention_mask)
    grads, current = _receiver_gradients(p.model, graph, p.metric, target, p.attention_mask)
    scores = _edge_scores(graph, _change(graph, values, current), grads)
    return _attribution("eap", graph, scores, p.metric, top_k, {})


def eap_ig(
    problem: Problem,
    *,
    steps: int = 5,
    over: IgOver | str = IgOver.INPUTS,
    top_k: int | None = None,
) -> Circuit:
    """EAP with integrated gradients, k = 1..steps, alpha = k / steps.
    - over="inputs": the receivers' gradients averaged over the embeddings target + alpha
      (source - target); needs a source (`Replacement.of("patch", source=...)`).
    - over="activations": every edge interpolated alpha of the way from the current sender
      output to its replacement (any ablation); each step's scores use that step's current
      outputs and gradients, averaged. By completeness the scores then sum to about
      metric(every edge replaced) - metric(target). Additive streams only (not post-norm)."""
    over = parse(IgOver, over, "over must be 'inputs' or 'activations', got {value}")
    p, graph = problem, problem.graph
    model, mask, replacement = p.model, p.attention_mask, p.replacement
    if over is IgOver.INPUTS and replacement.source is None:
        raise InputError("eap-ig interpolates between target and source: use ablation 'patch'")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    target = p.target.to(model.cfg.device)
    values = _replacements(model, graph, target, replacement, mask)
    settings = {"steps": steps, "over": over.value}
    if over is IgOver.ACTIVATIONS:
        scores = _ig_activations(model, graph, p.metric, target, values, steps, mask)
        return _attribution("eap-ig", graph, scores, p.metric, top_k, settings)
    with torch.inference_mode():
        _, cache = model.run_with_cache(
            target, names_filter=sender_hooks(graph), attention_mask=mask
        )
    change = _change(graph, values, {h: cache[h].clone() for h in sender_hooks(graph)})
    source = replacement.source
    assert source is not None  # over="inputs" needs one: checked above
    with torch.inference_mode():
        source_embed = _state(model.start(source.to(model.cfg.device), mask))
        target_embed = _state(model.start(target, mask))
    shift = (source_embed - target_embed).clone()
    total = None
    for k in range(1, steps + 1):
        alpha = k / steps
        grads, _ = _receiver_gradients(
            model, graph, p.metric, target, mask, lambda x, a=alpha: x + a * shift
        )
        total = grads if total is None else total + grads
    assert total is not None  # steps >= 1
    scores = _edge_scores(graph, change, total / steps)
    return _attribution("eap-ig", graph, scores, p.metric, top_k, settings)


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
    settings = {**settings, "top_k": top_k, "signed": signed}
    return Circuit(method, in_graph_order(graph, kept), scores, metric.name, settings)
