"""Naive references for the patching engine: one forward pass per patch, with plain hooks."""

from __future__ import annotations

import torch
from torch import Tensor

from circuits.nodes import NodePatch
from circuits.sites import site_axes


def naive_node_patching(
    model, target: Tensor, patches, values: dict[str, Tensor], metric
) -> Tensor:
    """The metric after each patch; `values[hook]` is the replacement ([batch or 1, ...]),
    missing for zero ablation."""
    out = []
    for patch in patches:
        axes = site_axes(model, patch.site, patch.layer)

        def hook(act: Tensor, hook, patch: NodePatch = patch, axes=axes) -> Tensor:
            index: list = [slice(None)] * act.ndim
            for axis, value in (
                (axes.position, patch.position),
                (axes.head, patch.head),
                (axes.neuron, patch.neuron),
            ):
                if axis is not None and value is not None:
                    index[axis] = value
            new = values.get(axes.hook)
            new = torch.zeros_like(act) if new is None else new.expand_as(act)
            act = act.clone()
            act[tuple(index)] = new[tuple(index)]
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(target, fwd_hooks=[(axes.hook, hook)])
        out.append(metric(logits[None])[0])
    return torch.stack(out)


def _norm(module, x: Tensor) -> Tensor:
    """The block's norm computed by hand (no hooks), LayerNorm or RMSNorm."""
    if module is None:
        return x
    if hasattr(module, "b"):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], module.w, module.b, module.eps)
    return x / (x.pow(2).mean(-1, keepdim=True) + module.eps).sqrt() * module.w


def _normalized(module, x: Tensor) -> Tensor:
    """What the norm's `hook_normalized` holds for input x: before its scale w and bias b."""
    if hasattr(module, "b"):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], eps=module.eps)
    return x / (x.pow(2).mean(-1, keepdim=True) + module.eps).sqrt()


def naive_edge_patching(model, target: Tensor, configs, source: Tensor, metric) -> Tensor:
    """One forward pass per edge set, with plain hooks: each patched receiver's q/k/v (from
    W_Q, W_K, W_V by hand), MLP input or final-norm output is recomputed from the stream it
    reads minus (current - source output) of its patched senders; for a post-norm model the
    stream is replayed from the embedding through the norms. Models with separate Q/K
    projections and ungated MLPs."""
    from circuits.edges import sender_hooks, sender_outputs
    from circuits.graph import Edge, build_graph
    from workbench import names

    graph = build_graph(model.config)
    _, cache = model.run_with_cache(source, names_filter=sender_hooks(graph))
    src = sender_outputs(graph, dict(cache.items()))
    sequential = names.resid_mid(0) in model.hook_dict
    out = []
    for config in configs:
        edges = [Edge.parse(e) if isinstance(e, str) else e for e in config]
        logits = _edge_patched_run(model, graph, target, edges, src, sequential)
        out.append(metric(logits[None])[0])
    return torch.stack(out)


def _edge_patched_run(model, graph, target, edges, src, sequential) -> Tensor:
    from circuits.edges import sender_hooks
    from workbench import names

    n_layers = model.config.n_layers
    acts: dict[str, Tensor] = {}

    def keep(act, hook):
        acts[hook.name] = act

    def current(sender: str) -> Tensor:
        if sender == "embed":
            return acts[names.resid_pre(0)]
        layer, _, head = sender[1:].partition(".h")
        if head:
            return acts[names.attn_result(int(layer))][:, :, int(head)]
        return acts[names.mlp_out(int(layer))]

    def correction(sender: str, receiver: str):
        if not any(e.sender == sender and e.receiver == receiver for e in edges):
            return 0.0
        return current(sender) - src[:, :, graph.sender_index[sender]]

    def patched_input(receiver: str, stream: Tensor) -> Tensor:
        if graph.post_norm:
            return replayed(receiver)
        for e in edges:
            if e.receiver == receiver:
                stream = stream - correction(e.sender, receiver)
        return stream

    def replayed(receiver: str) -> Tensor:
        r = graph.receivers[graph.receiver_index[receiver]]
        x = acts[names.resid_pre(0)] - correction("embed", receiver)
        for j in range(r.layer + 1):
            if j == r.layer and r.kind != "mlp":
                return x
            x = x + acts[names.attn_out(j)]
            for h in range(model.config.n_heads):
                x = x - correction(f"a{j}.h{h}", receiver)
            x = _norm(model.blocks[j].ln1, x)
            if j == r.layer:
                return x
            if model.blocks[j].mlp is not None:
                x = x + acts[names.mlp_out(j)] - correction(f"m{j}", receiver)
                x = _norm(model.blocks[j].ln2, x)
        return x

    def qkv_hook(layer: int, kind: str):
        def hook(act, hook):
            block = model.blocks[layer]
            stream = acts[names.resid_pre(layer)]
            w = getattr(block.attn, f"W_{kind.upper()}")
            b = getattr(block.attn, f"b_{kind.upper()}")
            act = act.clone()
            norm = None if graph.post_norm else block.ln1
            for h in range(act.shape[2]):
                x = patched_input(f"a{layer}.h{h}.{kind}", stream)
                act[:, :, h] = _norm(norm, x) @ w[h] + b[h]
            return act

        return hook

    def mlp_hook(layer: int):
        def hook(act, hook):
            read = names.resid_mid(layer) if sequential else names.resid_pre(layer)
            x = patched_input(f"m{layer}", acts[read])
            if not graph.post_norm:  # replaces ln2.hook_normalized
                return _normalized(model.blocks[layer].ln2, x)
            mlp = model.blocks[layer].mlp
            return x @ mlp.W_in + mlp.b_in  # the post-norm MLP reads the stream as is

        return hook

    def final_hook(act, hook):
        x = patched_input("logits", acts[names.resid_post(n_layers - 1)])
        return _normalized(model.ln_final, x)

    def last_hook(act, hook):
        acts[hook.name] = act
        return patched_input("logits", act)

    fwd = [(name, keep) for name in sender_hooks(graph)]
    for layer in range(n_layers):
        fwd.append((names.resid_pre(layer), keep))
        if sequential:
            fwd.append((names.resid_mid(layer), keep))
        for kind in "qkv":
            fwd.append((names.attn(layer, kind), qkv_hook(layer, kind)))
        fwd.append((names.attn_out(layer), keep))
        if names.mlp_out(layer) in model.hook_dict:
            mlp_in = names.mlp(layer, "pre") if graph.post_norm else names.norm_normalized(layer, 2)
            fwd.append((mlp_in, mlp_hook(layer)))
    if graph.post_norm:  # no final norm: the logits read the last block's output
        fwd.append((names.resid_post(n_layers - 1), last_hook))
    else:
        fwd.append((names.resid_post(n_layers - 1), keep))
        fwd.append((names.FINAL_NORMALIZED, final_hook))
    with torch.no_grad():
        logits = model.run_with_hooks(target, fwd_hooks=fwd)
    return logits
