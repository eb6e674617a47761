"""Edge patching: replace what flows along chosen edges of the computational graph
(`circuits.graph`) and measure the metric, for many edge sets in few forward passes.

Patching edge sender -> receiver gives the receiver the stream it reads with the sender's
current output swapped for its replacement (the source run's output, zero, a mean or a
resample); every other reader of the stream is untouched, and downstream nodes recompute from
what they read. For the additive stream of pre-norm, parallel and dual-stream blocks, the
receiver reads x - sum over its patched senders of (current - replacement). A post-norm
stream passes through norms between sublayers, so the receiver's stream is replayed from the
embedding with the patched senders' outputs replaced, through the same norms.

Each configuration is a set of edges (one edge: the effect of that edge; all edges outside a
circuit: the circuit's faithfulness). A configuration's run is the unpatched target's up to
the first layer it reads differently, so that prefix is computed once and shared."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from circuits.engine import Hooks, Job, Target, chunk_size, run_chunks
from circuits.graph import Edge, Graph, Sender
from circuits.problem import Problem
from circuits.result import PatchResult
from workbench import names
from workbench.errors import InputError
from workbench.functional import LayerNorm, RMSNorm
from workbench.model import Transformer
from workbench.staged import HeadInputs, SparseHeadInputs, StreamReader

SenderOutputs = Float[Tensor, "batch pos sender d_model"]


def sender_hooks(graph: Graph) -> list[str]:
    """The hook point holding each layer's sender outputs (embedding, head results, MLPs)."""
    return list(dict.fromkeys(s.hook for s in graph.senders))  # graph order is forward order


def sender_outputs(
    graph: Graph, acts: dict[str, Tensor], index: list[int] | None = None
) -> SenderOutputs:
    """Every sender's output (or those at `index`), stacked in graph order, from the
    activations of its hooks."""
    chosen = graph.senders if index is None else [graph.senders[i] for i in index]
    return torch.stack([_output(s, acts) for s in chosen], dim=2)


def _output(sender: Sender, acts: dict[str, Tensor]) -> Tensor:
    act = acts[sender.hook]
    return act if sender.head is None else act[:, :, sender.head]


def patch_edges(problem: Problem, configs: Sequence[Sequence[Edge | str]]) -> PatchResult:
    """Run the problem's target once per edge set with those edges patched; the metric of
    each."""
    return EdgePatcher(problem).result(configs)


class EdgePatcher:
    """What edge patching of one problem needs whatever the edge sets: the unpatched
    target's run and sender outputs, and the replacement values. `scores` evaluates edge
    sets against it, as often as a caller likes (circuit discovery tries thousands)."""

    def __init__(self, problem: Problem) -> None:
        model, replacement, metric = problem.model, problem.replacement, problem.metric
        self.model, self.metric, self.budget = model, metric, problem.memory_budget
        self.graph = graph = problem.graph
        hooks = sender_hooks(graph)
        replay = stream_hooks(model.config.n_layers) if graph.post_norm else []
        cached = sorted(set(hooks + replay) & set(model.hook_dict))
        run = Target.of(
            model, problem.target, replacement, metric, problem.attention_mask, cache=cached
        )
        with torch.inference_mode():
            values, source_logits = replacement.values(model, hooks, run.batch, run.mask)
            self.run = run.with_source(source_logits, metric)
            clean = sender_outputs(graph, run.acts)
            zero = torch.zeros((), dtype=clean.dtype, device=clean.device)
            swapped = sender_outputs(
                graph, {h: values.get(h, zero).expand_as(run.acts[h]) for h in hooks}
            )
        stream = {h: run.acts[h] for h in replay if h in run.acts}
        self.context = _Context(model, graph, clean - swapped, swapped, run.batch, stream)

    @property
    def target_baseline(self) -> float:
        return self.run.target_baseline

    def scores(
        self, configs: Sequence[Sequence[Edge | str]], base: Sequence[Edge | str] = ()
    ) -> Tensor:
        """The metric of each edge set [configs], on the model's device; every set also
        holds the edges of `base` (a growing base, as in ACDC, is converted once)."""
        if not configs:
            raise InputError("no edge sets to run: pass at least one list of edges")
        edge_sets = [[self.graph.check(e) for e in config] for config in configs]
        patched = _masks(self.graph, edge_sets) | self._base_mask(base)[None]
        first_layer = [_first_layer(self.graph, m) for m in patched]
        context = self.context
        job = Job(
            first_layer, lambda chunk, _: context.prepare(patched[chunk], first_layer[chunk[0]])
        )
        streams = 3 * self.model.config.n_heads + max(int(m.any(-1).sum()) for m in patched)
        run = self.run
        max_chunk = chunk_size(self.model, run.batch, run.n_pos, self.budget, streams)
        return run_chunks(self.model, run, job, self.metric, max_chunk)

    def _base_mask(self, base: Sequence[Edge | str]) -> Tensor:
        """[sender, receiver] of `base`, extending the last one when `base` grew from it."""
        cached, mask = getattr(self, "_base", ([], None))
        if mask is None or len(base) < len(cached) or list(base[: len(cached)]) != cached:
            cached, mask = [], _masks(self.graph, [[]])[0]
        new = [self.graph.check(e) for e in base[len(cached) :]]
        if new:
            mask = mask | _masks(self.graph, [new])[0]
        self._base = (list(base), mask)
        return mask

    def result(self, configs: Sequence[Sequence[Edge | str]]) -> PatchResult:
        scores = self.scores(configs)
        described: tuple[dict[str, object], ...] = tuple(
            {"edges": [self.graph.check(e).name for e in config]} for config in configs
        )
        return self.run.result(described, ("config",), (len(configs),), scores)


def edge_sweep(graph: Graph) -> list[list[Edge]]:
    """Every edge alone: the configurations of all-edge patching."""
    return [[edge] for edge in graph.edges]


def _masks(graph: Graph, edge_sets: list[list[Edge]]) -> Tensor:
    masks = torch.zeros(len(edge_sets), len(graph.senders), len(graph.receivers), dtype=torch.bool)
    s, r = graph.sender_index, graph.receiver_index
    index = [(k, s[e.sender], r[e.receiver]) for k, edges in enumerate(edge_sets) for e in edges]
    if index:
        masks[tuple(torch.tensor(index).T)] = True
    return masks


def _first_layer(graph: Graph, mask: Tensor) -> int:
    """The first layer whose blocks read anything patched (n_layers: only the logits)."""
    read = mask.any(0).nonzero().flatten().tolist()
    return min((graph.receivers[r].layer for r in read), default=graph.receivers[-1].layer)


class _Context:
    """What every chunk shares: sender outputs of the unpatched target and their replacements,
    and for a post-norm model the target's stream at every point a replay passes."""

    def __init__(
        self,
        model: Transformer,
        graph: Graph,
        delta: SenderOutputs,
        swapped: SenderOutputs,
        batch: int,
        stream: dict[str, Tensor],
    ) -> None:
        self.model, self.graph, self.batch = model, graph, batch
        self.delta = delta  # unpatched target output - replacement, per sender
        self.swapped = swapped
        self.stream = stream  # post-norm: hook name -> the unpatched target's value
        self.groups: dict[tuple[int, str], list[int]] = {}
        for i, r in enumerate(graph.receivers):
            self.groups.setdefault((r.layer, r.kind), []).append(i)
        self.by_layer: dict[int, list[int]] = {}  # senders of each layer, -1: the embedding
        for u, s in enumerate(graph.senders):
            self.by_layer.setdefault(s.layer, []).append(u)

    def prepare(self, mask: Tensor, start: int) -> tuple[Hooks, _Reader]:
        reader = _Reader(self, mask, start)
        return reader.capture_hooks(), reader


def stream_hooks(n_layers: int) -> list[str]:
    """Where a post-norm replay reads the stream and the sublayer outputs."""
    hooks = []
    for layer in range(n_layers):
        hooks += [names.resid_pre(layer), names.attn_out(layer), names.resid_mid(layer)]
        hooks.append(names.mlp_out(layer))
    return hooks


class _Reader(StreamReader):
    """Gives each receiver of a chunk of configurations its own input (a StreamReader)."""

    def __init__(self, context: _Context, mask: Tensor, start: int) -> None:
        self.c = context
        self.k = len(mask)
        self.start = start
        self.mask_host = mask
        self.mask = mask.to(device=context.delta.device, dtype=context.delta.dtype)
        senders = context.graph.senders
        # senders before the first block this chunk runs hold the unpatched target's outputs
        self.n_prefix = sum(1 for s in senders if s.layer < start)
        self.captured: dict[int, Tensor] = {}  # sender index -> [config, batch, pos, d_model]
        self.capture = [u for u in range(self.n_prefix, len(senders)) if bool(mask[:, u].any())]
        self.current: dict[str, Tensor] = {}  # post-norm: stream values of this run
        self.end: int | None = None  # set when the last block runs at position end - 1 alone
        self.first: dict[int, int] = {}  # sender index -> the first position captured

    @property
    def narrowable(self) -> bool:
        """Whether this reader serves a last block run at one position (`narrow`): every
        additive wiring; a post-norm replay reads whole streams."""
        return not self.c.graph.post_norm

    def narrow(self, end: int) -> None:
        self.end = end

    def _window(self, n: int) -> slice:
        """The positions a stream of n positions holds now."""
        return slice(None) if self.end is None else slice(self.end - n, self.end)

    def _current(self, u: int, window: slice) -> Tensor:
        """A captured sender's current - replacement at the positions of `window`."""
        held, first = self.captured[u], self.first[u]
        if window.start is None:
            return held
        return held[:, :, window.start - first : window.stop - first]

    def capture_hooks(self) -> Hooks:
        """Hooks recording, in the patched run, current - replacement of every sender that a
        patched edge leaves and that runs in this chunk (and, post-norm, the stream)."""
        graph, hooks = self.c.graph, []
        by_hook: dict[str, list[int]] = {}
        for u in self.capture:
            by_hook.setdefault(graph.senders[u].hook, []).append(u)
        for hook, senders in by_hook.items():
            hooks.append((hook, self._recorder(senders)))
        if graph.post_norm and self.mask_host.any():
            hooks += [(h, self._keep) for h in self.c.stream if _layer(h) >= self.start]
        return hooks

    def _recorder(self, senders: list[int]):
        def record(act: Tensor, hook: object) -> None:
            stacked = act.view(self.k, self.c.batch, *act.shape[1:])
            window = self._window(act.shape[1])
            for u in senders:
                head = self.c.graph.senders[u].head
                current = stacked if head is None else stacked[:, :, :, head]
                self.captured[u] = current - self.c.swapped[:, window, u]
                self.first[u] = window.start or 0

        return record

    def _keep(self, act: Tensor, hook) -> None:
        self.current[hook.name] = act.view(self.k, self.c.batch, *act.shape[1:])

    def _correction(
        self, receivers: list[int], senders: list[int], window: slice = slice(None)
    ) -> Tensor | None:
        """sum over the patched ones of `senders` of (current - replacement) as `receivers`
        see it at the positions of `window`, [config, batch, pos, receiver, d_model]; None
        when none is patched."""
        hit = self.mask_host[:, senders][:, :, receivers].any(0).any(-1).tolist()
        used = [u for u, h in zip(senders, hit, strict=True) if h]
        if not used:
            return None
        mask = self.mask[:, :, receivers]
        prefix = [u for u in used if u < self.n_prefix]
        run = [u for u in used if u >= self.n_prefix]
        out = None
        if prefix:
            delta = self.c.delta[:, window, prefix]
            out = torch.einsum("kur,bpud->kbprd", mask[:, prefix], delta)
        if run:
            current = torch.stack([self._current(u, window) for u in run], dim=3)
            more = torch.einsum("kur,kbpud->kbprd", mask[:, run], current)
            out = more if out is None else out + more
        return out

    def _untouched(self, receivers: list[int]) -> bool:
        """Whether nothing patched reaches these receivers (they read x itself)."""
        return not receivers or not bool(self.mask_host[:, :, receivers].any())

    def _read_heads(self, x: Tensor, receivers: list[int]) -> Tensor | SparseHeadInputs:
        """The stream as these attention receivers read it: x itself when nothing patched
        reaches them, else per receiver [config*batch, pos, receiver, d_model], or sparsely
        when few (config, receiver) pairs are patched (single edges)."""
        if self._untouched(receivers):
            return x
        pairs = self.mask_host[:, :, receivers].any(1).nonzero()  # [pair, (config, receiver)]
        if not self.c.graph.post_norm and 2 * len(pairs) <= self.k * len(receivers):
            return self._sparse(x, receivers, pairs)
        return self._dense(x, receivers)

    def _read(self, x: Tensor, receivers: list[int]) -> Tensor:
        """The stream as one MLP or the logits read it: x itself when nothing patched reaches
        it, else [config*batch, pos, d_model]."""
        return x if self._untouched(receivers) else self._dense(x, receivers)[:, :, 0]

    def _dense(self, x: Tensor, receivers: list[int]) -> Tensor:
        """Per receiver [config*batch, pos, receiver, d_model]."""
        if self.c.graph.post_norm:
            return self._replay(receivers).flatten(0, 1)
        every = list(range(len(self.c.graph.senders)))
        correction = self._correction(receivers, every, self._window(x.shape[1]))
        assert correction is not None  # a patched sender reaches these receivers
        return x[:, :, None, :] - correction.flatten(0, 1)

    def _sparse(self, x: Tensor, receivers: list[int], pairs: Tensor) -> SparseHeadInputs:
        """Additive stream, per head: x for every head, and for each patched (config,
        receiver) pair that receiver's own input x - sum of (current - replacement) over its
        patched senders, for the batch rows of that config."""
        b, graph = self.c.batch, self.c.graph
        configs, which = pairs[:, 0], torch.tensor(receivers)[pairs[:, 1]]
        used = self.mask_host[configs, :, which].any(0).nonzero().flatten().tolist()
        mask = self.mask[configs.to(self.mask.device), :, which.to(self.mask.device)]  # [pair, u]
        prefix = [u for u in used if u < self.n_prefix]
        run = [u for u in used if u >= self.n_prefix]
        stacked = x.view(self.k, b, *x.shape[1:])
        device = x.device
        configs_on = configs.to(device)
        window = self._window(x.shape[1])
        values = stacked[configs_on]  # [pair, batch, pos, d_model]
        if prefix:
            values = values - torch.einsum(
                "nu,bpud->nbpd", mask[:, prefix], self.c.delta[:, window, prefix]
            )
        if run:
            current = torch.stack([self._current(u, window)[configs_on] for u in run], dim=3)
            values = values - torch.einsum("nu,nbpud->nbpd", mask[:, run], current)
        heads = torch.tensor([graph.receivers[r].head for r in which.tolist()])
        rows = (configs[:, None] * b + torch.arange(b)).flatten()
        return SparseHeadInputs(
            x,
            rows.to(device),
            heads.repeat_interleave(b).to(device),
            values.flatten(0, 1),
            len(receivers),
        )

    def _replay(self, receivers: list[int]) -> Tensor:
        """Post-norm: the stream replayed from the first patched sender up to where these
        receivers read it, each patched sender's output replaced, through the same norms."""
        graph, model = self.c.graph, self.c.model
        where = graph.receivers[receivers[0]]
        senders = self.mask_host[:, :, receivers].any(0).any(-1).nonzero().flatten().tolist()
        first = max(graph.senders[senders[0]].layer, 0)
        x = self._value(names.resid_pre(first))
        if graph.senders[senders[0]].layer < 0:  # the embedding itself is patched
            x = _minus(x, self._correction(receivers, self.c.by_layer[-1]))
        for layer in range(first, where.layer + 1):
            if layer == where.layer and where.kind != "mlp":  # attention, or the logits
                return x
            x = x + self._value(names.attn_out(layer))
            heads = [u for u in self.c.by_layer[layer] if graph.senders[u].head is not None]
            x = _minus(x, self._correction(receivers, heads))
            block = model.block(layer)
            x = _unhooked(block.ln1, x)
            if layer == where.layer:  # the MLP of this layer
                return x
            if block.mlp is not None:
                x = x + self._value(names.mlp_out(layer))
                mlp = [u for u in self.c.by_layer[layer] if graph.senders[u].head is None]
                x = _minus(x, self._correction(receivers, mlp))
                x = _unhooked(block.ln2, x)
        return x  # the logits read the last block's output

    def _value(self, hook: str) -> Tensor:
        """A stream value of this run, [config or 1, batch, pos, 1, d_model]."""
        if _layer(hook) >= self.start:
            return self.current[hook][:, :, :, None]
        return self.c.stream[hook][None, :, :, None]

    def attention(self, layer: int, x: Tensor) -> tuple[HeadInputs, HeadInputs, HeadInputs]:
        groups = self.c.groups
        q, k, v = (self._read_heads(x, groups.get((layer, kind), [])) for kind in "qkv")
        return q, k, v

    def mlp(self, layer: int, x: Tensor) -> Tensor:
        return self._read(x, self.c.groups.get((layer, "mlp"), []))

    def final(self, x: Tensor) -> Tensor:
        n_layers = self.c.graph.receivers[-1].layer
        return self._read(x, self.c.groups[(n_layers, "logits")])


def _unhooked(norm: nn.Module | None, x: Tensor) -> Tensor:
    """A norm of a post-norm block applied without its hooks (None: the block has none)."""
    if norm is None:
        return x
    if not isinstance(norm, LayerNorm | RMSNorm):
        raise TypeError(f"a post-norm replay needs a LayerNorm or RMSNorm, got {type(norm)}")
    return norm.unhooked(x)


def _minus(x: Tensor, correction: Tensor | None) -> Tensor:
    return x if correction is None else x - correction


def _layer(hook: str) -> int:
    return int(hook.split(".")[1])
