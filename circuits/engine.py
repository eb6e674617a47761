"""The batched runner under node and edge patching.

Many patch configurations are evaluated per forward pass, stacked on the batch dimension
(configuration k, prompt b at row k * batch + b). The unpatched prefix of the target run is
computed once: configurations are sorted by the first layer they touch, and each chunk starts
from the target's stream at its earliest layer (`Transformer.advance`), tiled. Chunks are sized
to the caller's memory budget. The metric is evaluated on the device for the whole chunk and
written into a device tensor, so nothing syncs with the host until the end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.metrics import Metric, read_positions
from circuits.result import PatchResult
from workbench.components.block import StreamReader
from workbench.errors import InputError
from workbench.model import Stream, Transformer

Hooks = list[tuple[str, Callable]]
DEFAULT_BUDGET = 1 << 30  # bytes of activations one chunk may hold: 1 GiB


@dataclass(frozen=True)
class Job:
    """What the runner needs of one kind of patching: the first layer each configuration
    changes, and what applies a chunk of configurations to the stacked run: forward hooks
    and, for edge patching, a reader that gives each reader of the stream its own input."""

    first_layer: Sequence[int]
    prepare: Callable[[list[int]], tuple[Hooks, StreamReader | None]]


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


@torch.inference_mode()
def run_chunks(
    model: Transformer, start: Stream, batch: int, job: Job, metric: Metric, max_chunk: int
) -> Tensor:
    """The metric of every configuration of `job` [n], on the model's device."""
    n = len(job.first_layer)
    scores = torch.empty(n, device=model.cfg.device)
    at, metric = read_positions(metric)  # unembed only the position the metric reads
    order = sorted(range(n), key=lambda i: job.first_layer[i])
    base = start
    for lo in range(0, n, max_chunk):
        chunk = order[lo : lo + max_chunk]
        base = model.advance(base, job.first_layer[chunk[0]])
        hooks, reader = job.prepare(chunk)
        keep = at if at is None or isinstance(at, int) else at.repeat(len(chunk))
        if hooks:
            with model.hooks(fwd_hooks=hooks):
                logits = model.finish(base.tile(len(chunk)), reader, keep)
        else:  # nothing to hook: skip the context, whose exit walks every hook point
            logits = model.finish(base.tile(len(chunk)), reader, keep)
        stacked = logits.view(len(chunk), batch, *logits.shape[1:])
        scores[torch.tensor(chunk, device=scores.device)] = metric(stacked).to(scores.dtype)
    return scores
