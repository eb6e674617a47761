"""The batched runner under node and edge patching.

Many patch configurations are evaluated per forward pass, stacked on the batch dimension
(configuration k, prompt b at row k * batch + b). The unpatched prefix of the target run is
computed once: configurations are sorted by the first layer they touch, and each chunk starts
from the target's stream at its earliest layer (`Transformer.advance`; kept per layer, so the
many sweeps of one ACDC run share it), tiled. Chunks are sized
to the caller's memory budget. The metric is evaluated on the device for the whole chunk and
written into a device tensor, so nothing syncs with the host until the end.

In a causal model a patch at position p leaves every earlier position as it was, so when the
job names each configuration's first position (node patching), a chunk runs only the positions
from its earliest one on, attending to the unpatched target's keys and values of the positions
before (`KVCache`): the causal suffix. Chunks are then cut to balance the work of positions a
configuration does not need against the per-pass overhead (`plan_chunks`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.metrics import Metric, read_positions
from circuits.result import PatchResult
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.staged import (
    NO_PADDING,
    KVCache,
    Stream,
    StreamReader,
    cache_unsupported,
    staged_model,
)

# forward hooks as HookedRootModule.hooks takes them (its list type is invariant: a name may
# also be a filter on names there, so the element type is spelled as it declares it)
Hooks = list[tuple[str | Callable, Callable]]
DEFAULT_BUDGET = 1 << 30  # bytes of activations one chunk may hold: 1 GiB


@dataclass(frozen=True)
class Job:
    """What the runner needs of one kind of patching: the first layer each configuration
    changes, and what applies a chunk of configurations to the stacked run: forward hooks
    and, for edge patching, a reader that gives each reader of the stream its own input.
    `prepare(chunk, offset)` is told the first position the stacked run computes (0 unless
    `first_position`, each configuration's earliest changed position, allows a suffix)."""

    first_layer: Sequence[int]
    prepare: Callable[[list[int], int], tuple[Hooks, StreamReader | None]]
    first_position: Sequence[int] | None = None


@dataclass(frozen=True)
class Target:
    """The checked target run: its unpatched prefix stream, sizes and baseline metrics."""

    start: Stream
    batch: int
    n_pos: int  # positions the blocks see (tokens, patches plus class token, variates)
    mask: Tensor | None
    metric: str
    ablation: str
    target_baseline: float
    source_baseline: float | None
    acts: dict[str, Tensor]  # the unpatched target's activations at the hooks asked for
    prefix: dict[int, Stream] = field(default_factory=dict)  # the unpatched stream per layer

    @classmethod
    @torch.inference_mode()
    def of(
        cls,
        model: Transformer,
        target: Tensor,
        replacement: Replacement,
        metric: Metric,
        attention_mask: Tensor | None,
        cache: Sequence[str] = (),
    ) -> Target:
        """Check the target, run it once unpatched (keeping the activations of `cache`)."""
        staged_model(model, "batched patching")
        replacement.check(target)
        device = model.cfg.device
        mask = None if attention_mask is None else attention_mask.to(device)
        acts: dict[str, Tensor] = {}

        def keep(act: Tensor, hook) -> None:
            acts[hook.name] = act

        start = model.start(target.to(device), mask)  # checks the input
        with model.hooks(fwd_hooks=[(name, keep) for name in cache]):
            target_baseline = float(metric(model.finish(start)[None])[0])
        state = start.state[0] if isinstance(start.state, tuple) else start.state
        name = getattr(metric, "name", "metric")
        return cls(
            start,
            state.shape[0],
            state.shape[1],
            mask,
            name,
            replacement.ablation.value,
            target_baseline,
            None,
            acts,
        )

    def stream_at(self, model: Transformer, layer: int) -> Stream:
        """The unpatched target's stream at `layer`, computed once (from the nearest layer
        before it already computed) and kept for every later sweep on this target."""
        if layer not in self.prefix:
            below = [at for at in self.prefix if at < layer]
            base = self.prefix[max(below)] if below else self.start
            self.prefix[layer] = model.advance(base, layer)
        return self.prefix[layer]

    @torch.inference_mode()
    def with_source(self, logits: Tensor | None, metric: Metric) -> Target:
        """The same target with the source run's metric (from the run that gave the values)."""
        if logits is None:
            return self
        return replace(self, source_baseline=float(metric(logits[None])[0]))

    def result(
        self,
        configs: tuple[dict[str, object], ...],
        dims: tuple[str, ...],
        shape: tuple[int, ...],
        scores: Tensor,
    ) -> PatchResult:
        return PatchResult(
            configs,
            dims,
            shape,
            scores.cpu(),
            self.metric,
            self.ablation,
            self.target_baseline,
            self.source_baseline,
        )


def config_bytes(model: Transformer, batch: int, n_pos: int, streams: int = 0) -> int:
    """An estimate of the peak activation memory of one configuration: the largest tensors a
    block and the unembedding hold at once, for `batch` prompts of `n_pos` positions, plus
    `streams` extra copies of the residual stream (edge patching's per-receiver inputs)."""
    c = model.config
    elem = next(model.parameters()).element_size()
    per_pos = (6 + streams) * c.d_model + 3 * c.d_mlp + 4 * c.n_heads * c.d_head + 2 * c.d_vocab
    return elem * batch * (n_pos * per_pos + 3 * c.n_heads * n_pos * n_pos)


def chunk_size(model: Transformer, batch: int, n_pos: int, budget: int, streams: int = 0) -> int:
    need = config_bytes(model, batch, n_pos, streams)
    if budget < need:
        raise InputError(
            f"memory budget {budget:,} bytes is too small for one patch configuration, which "
            f"needs about {need:,} bytes ({batch} prompts x {n_pos} positions); raise the "
            "budget or patch fewer prompts at a time"
        )
    return budget // need


# Per-pass overhead of a chunk, in positions' worth of work per layer (kernel launches, hook
# calls, reading the weights): what a smaller chunk must save to be worth its own pass.
OVERHEAD_ROWS = {"cpu": 96, "cuda": 4096}
PLAN_WINDOW = 128  # the most configurations one planned chunk holds


Progress = Callable[[int, int], None]  # (configurations done, of how many), after each chunk


@torch.inference_mode()
def run_chunks(
    model: Transformer,
    run: Target,
    job: Job,
    metric: Metric,
    max_chunk: int,
    on_progress: Progress | None = None,
) -> Tensor:
    """The metric of every configuration of `job` [n] on the target `run`, on the model's
    device. `on_progress(done, n)` is called after each chunk, with no hook on the model (it
    may raise to stop the run, or let another caller use the model meanwhile); it is told
    counts only, so it never waits for the device."""
    n, start, batch = len(job.first_layer), run.start, run.batch
    scores = torch.empty(n, device=model.cfg.device)
    reading = read_positions(metric)  # unembed only the position and columns it reads
    at, columns, metric = reading.at, reading.columns, reading.metric
    positions = job.first_position
    suffix = CausalSuffix.of(model, start, at) if positions is not None else None
    if suffix is None or positions is None:
        order = sorted(range(n), key=lambda i: job.first_layer[i])
        chunks = [order[lo : lo + max_chunk] for lo in range(0, n, max_chunk)]
    else:
        chunks = suffix.plan(job, batch, max_chunk)
    done = 0
    for chunk in chunks:
        layer = min(job.first_layer[i] for i in chunk)
        if suffix is None or positions is None:
            stream, offset = run.stream_at(model, layer), 0
        else:
            offset = min(suffix.limit, *(positions[i] for i in chunk))
            stream = suffix.stream(layer, offset)
        hooks, reader = job.prepare(chunk, offset)
        keep = _shifted(at, offset)
        keep = keep if keep is None or isinstance(keep, int) else keep.repeat(len(chunk))
        if hooks:
            with model.hooks(fwd_hooks=hooks):
                logits = model.finish(stream.tile(len(chunk)), reader, keep, columns)
        else:  # nothing to hook: skip the context, whose exit walks every hook point
            logits = model.finish(stream.tile(len(chunk)), reader, keep, columns)
        stacked = logits.view(len(chunk), batch, *logits.shape[1:])
        scores[torch.tensor(chunk, device=scores.device)] = metric(stacked).to(scores.dtype)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, n)
    return scores


def _shifted(at: int | Tensor | None, offset: int) -> int | Tensor | None:
    """The read position in a run that starts at position `offset`."""
    if at is None or (isinstance(at, int) and at < 0):
        return at
    return at - offset


@dataclass(frozen=True)
class CausalSuffix:
    """The unpatched target run of a causal model, kept per layer (the stream each block reads
    and the keys and values it made), so that a chunk starts at any layer and position."""

    states: list[Tensor]  # [batch, pos, d_model] per layer 0..n_layers
    cache: KVCache
    n_pos: int
    limit: int  # the earliest position the metric reads: no run starts after it

    @classmethod
    def of(cls, model: Transformer, start: Stream, at: int | Tensor | None) -> CausalSuffix | None:
        """None where positions cannot be skipped: a non-causal model (or one whose cache is
        unsupported), padded prompts, a stream that is not one tensor, a metric reading every
        position."""
        seqs, state = start.seqs, start.state
        if cache_unsupported(model.config) is not None:
            return None
        if seqs.padding is not None or seqs.position_ids is not None or seqs.cache is not None:
            return None
        if not isinstance(state, Tensor) or at is None:
            return None
        n_pos = state.shape[1]
        limit = (at % n_pos) if isinstance(at, int) else int(at.min())
        cache = KVCache()
        stream = Stream(0, state, replace(seqs, cache=cache))
        states = [state]
        for layer in range(model.config.n_layers):
            stream = model.advance(stream, layer + 1)
            assert isinstance(stream.state, Tensor)  # a single stream stays single
            states.append(stream.state)
        return cls(states, cache, n_pos, limit)

    def stream(self, layer: int, offset: int) -> Stream:
        """The stream block `layer` reads at positions `offset`.., with the keys and values of
        the positions before it (for every layer; any batch that is a multiple of the
        target's)."""
        prefix = KVCache(
            {layer: k[:, :offset] for layer, k in self.cache.keys.items()},
            {layer: v[:, :offset] for layer, v in self.cache.values.items()},
            grow=False,
        )
        seqs = replace(NO_PADDING, cache=prefix, offset=offset)
        return Stream(layer, self.states[layer][:, offset:], seqs)

    def plan(self, job: Job, batch: int, max_chunk: int) -> list[list[int]]:
        """Chunks of configurations, sorted by (first layer, first position) and cut where the
        work a chunk spends on layers and positions its configurations do not need outweighs
        the overhead of another pass (dynamic programming over the cut points)."""
        layers = len(self.states) - 1
        if job.first_position is None:
            raise ValueError("a suffix is planned by the configurations' first positions")
        first = [min(self.limit, p) for p in job.first_position]
        order = sorted(range(len(first)), key=lambda i: (job.first_layer[i], first[i]))
        device = self.states[0].device.type
        overhead = OVERHEAD_ROWS.get(device, OVERHEAD_ROWS["cuda"])
        window = min(max_chunk, PLAN_WINDOW)
        best = [0.0] + [float("inf")] * len(order)
        cut = [0] * (len(order) + 1)
        for end in range(1, len(order) + 1):
            lowest = self.n_pos
            for begin in range(end - 1, max(end - window, 0) - 1, -1):
                lowest = min(lowest, first[order[begin]])
                top = layers - job.first_layer[order[begin]]  # sorted: the chunk's first layer
                cost = best[begin] + top * (
                    (end - begin) * batch * (self.n_pos - lowest) + overhead
                )
                if cost < best[end]:
                    best[end], cut[end] = cost, begin
        chunks, end = [], len(order)
        while end:
            chunks.append(order[cut[end] : end])
            end = cut[end]
        return chunks[::-1]
