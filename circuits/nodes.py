"""Node patching: replace one activation (a site at a layer, optionally one position, head
or neuron) and measure the metric, for many such patches in few forward passes.

    sweep = node_sweep(model, "resid_pre", n_pos=tokens.shape[1], positions="each")
    result = patch_nodes(model, corrupted, sweep, Replacement.of("patch", source=clean),
                         LogitDiff(answer, wrong))
    result.grid()  # [layer, pos], as transformer_lens.patching.get_act_patch_resid_pre
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from circuits.ablation import Replacement
from circuits.engine import (
    DEFAULT_BUDGET,
    Hooks,
    Job,
    Progress,
    Target,
    chunk_size,
    run_chunks,
)
from circuits.metrics import Metric
from circuits.result import PatchResult
from circuits.sites import SiteAxes, site_axes
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.staged import staged_model


@dataclass(frozen=True)
class NodePatch:
    """One patch: `site` at `layer`, at one position/head/neuron or (None) all of them."""

    site: str
    layer: int
    position: int | None = None
    head: int | None = None
    neuron: int | None = None


Each = Literal["each", "all"]


@dataclass(frozen=True)
class Sweep:
    """Patches in grid order, and the grid's dimension names and sizes."""

    patches: tuple[NodePatch, ...]
    dims: tuple[str, ...]
    shape: tuple[int, ...]


def node_sweep(
    model: Transformer,
    site: str,
    *,
    n_pos: int,
    positions: Each = "each",
    heads: Each = "each",
    neurons: Each = "all",
    layers: list[int] | None = None,
) -> Sweep:
    """Every layer x (position) x (head) x (neuron) of `site`, in that grid order; "all"
    patches that axis whole. The order matches TransformerLens's patching functions:
    [layer, pos] for resid_pre, [layer, pos, head] by position, [layer, head] over all."""
    layers = list(range(model.config.n_layers)) if layers is None else layers
    axes = site_axes(model, site, layers[0] if layers else 0)
    grid: list[tuple[str, list[int]]] = [("layer", layers)]
    if positions == "each" and axes.position is not None:
        grid.append(("pos", list(range(n_pos))))
    if heads == "each" and axes.head is not None:
        grid.append(("head", list(range(axes.sizes[axes.head] or 0))))
    if neurons == "each" and axes.neuron is not None:
        grid.append(("neuron", list(range(axes.sizes[axes.neuron] or 0))))
    names = [name for name, _ in grid]
    patches = []
    for combo in itertools.product(*[values for _, values in grid]):
        fields = dict(zip(names, combo, strict=True))
        patches.append(
            NodePatch(
                site,
                fields["layer"],
                position=fields.get("pos"),
                head=fields.get("head"),
                neuron=fields.get("neuron"),
            )
        )
    return Sweep(tuple(patches), tuple(names), tuple(len(v) for _, v in grid))


def patch_nodes(
    model: Transformer,
    target: Tensor,
    sweep: Sweep | list[NodePatch],
    replacement: Replacement,
    metric: Metric,
    *,
    memory_budget: int = DEFAULT_BUDGET,
    attention_mask: Tensor | None = None,
    on_progress: Progress | None = None,
) -> PatchResult:
    """Run `target` once per patch with that patch applied; return the metric of each.
    `on_progress(done, total)`: patches done after each batched pass (`run_chunks`)."""
    if not isinstance(sweep, Sweep):
        sweep = Sweep(tuple(sweep), ("patch",), (len(sweep),))
    if not sweep.patches:
        raise InputError("no patches to run: the sweep is empty")
    run = Target.of(model, target, replacement, metric, attention_mask)
    batch, n_pos = run.batch, run.n_pos
    patches = sweep.patches
    axes = [_checked_axes(model, p, n_pos) for p in patches]
    values, source_logits = replacement.values(model, {a.hook for a in axes}, batch, run.mask)
    run = run.with_source(source_logits, metric)
    job = Job(
        first_layer=[p.layer for p in patches],
        prepare=lambda chunk, offset: (
            _hooks([patches[i] for i in chunk], [axes[i] for i in chunk], values, n_pos, offset),
            None,
        ),
        first_position=[_first_position(p, a) for p, a in zip(patches, axes, strict=True)],
    )
    max_chunk = chunk_size(model, batch, n_pos, memory_budget)
    scores = run_chunks(model, run, job, metric, max_chunk, on_progress)
    configs = tuple({k: v for k, v in vars(p).items() if v is not None} for p in patches)
    return run.result(configs, sweep.dims, sweep.shape, scores)


@torch.inference_mode()
def patched_run(
    model: Transformer,
    target: Tensor,
    patch: NodePatch,
    replacement: Replacement,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """The logits [batch, pos, d_vocab] of `target` with one patch applied: the whole run
    behind one cell of a sweep (whose metric `patch_nodes` gave), through the same hooks."""
    staged_model(model, "node patching")
    replacement.check(target)
    device = model.cfg.device
    mask = None if attention_mask is None else attention_mask.to(device)
    tokens = target.to(device)
    state = model.start(tokens, mask).state  # checks the input
    n_pos = (state[0] if isinstance(state, tuple) else state).shape[1]
    axes = _checked_axes(model, patch, n_pos)
    values, _ = replacement.values(model, [axes.hook], len(target), mask)
    with model.hooks(fwd_hooks=_hooks([patch], [axes], values, n_pos, 0)):
        return model(tokens, attention_mask=mask)


def _checked_axes(model: Transformer, patch: NodePatch, n_pos: int) -> SiteAxes:
    axes = site_axes(model, patch.site, patch.layer)
    for label, index, axis, size in (
        ("position", patch.position, axes.position, n_pos),
        ("head", patch.head, axes.head, None if axes.head is None else axes.sizes[axes.head]),
        (
            "neuron",
            patch.neuron,
            axes.neuron,
            None if axes.neuron is None else axes.sizes[axes.neuron],
        ),
    ):
        if index is None:
            continue
        if axis is None:
            raise InputError(f"site {patch.site!r} has no {label} axis; leave {label} unset")
        if not 0 <= index < (size or 0):
            raise InputError(
                f"{label} {index} is out of range for site {patch.site!r}: 0..{(size or 0) - 1}"
            )
    return axes


def _first_position(patch: NodePatch, axes: SiteAxes) -> int:
    """The earliest position a patch changes (in a causal model, the ones before it keep
    their values)."""
    return patch.position if axes.position is not None and patch.position is not None else 0


def _hooks(
    patches: list[NodePatch],
    axes: list[SiteAxes],
    values: dict[str, Tensor],
    n_pos: int,
    offset: int,
) -> Hooks:
    """One hook per patched hook point, applying every patch of the chunk there at once: a
    [config, 1, ...] mask (built on the host, moved once) selects the replaced entries. A run
    that starts at position `offset` (the causal suffix) sees positions `offset`.. only."""
    k = len(patches)
    by_hook: dict[str, list[int]] = {}
    for i, a in enumerate(axes):
        by_hook.setdefault(a.hook, []).append(i)
    hooks = []
    for name, rows in by_hook.items():
        site = axes[rows[0]]
        keep = {site.position, site.head, site.neuron} - {None}
        sizes = [(site.sizes[i] or n_pos) if i in keep else 1 for i in range(1, site.ndim)]
        where = torch.zeros(k, 1, *sizes, dtype=torch.bool)
        for i in rows:
            where[(i, 0, *_index(patches[i], site))] = True
        value = values.get(name)
        if offset and site.position is not None:
            if where.shape[site.position + 1] > 1:
                where = where.narrow(site.position + 1, offset, n_pos - offset)
            if value is not None:
                value = value.narrow(site.position, offset, n_pos - offset)
        hooks.append((name, _replace(where, value)))
    return hooks


def _replace(where: Tensor, new: Tensor | None):
    def hook(act: Tensor, hook: object) -> Tensor:
        stacked = act.view(len(where), -1, *act.shape[1:])  # [config, batch, ...]
        value = torch.zeros((), dtype=act.dtype, device=act.device) if new is None else new
        return torch.where(where.to(act.device), value, stacked).view_as(act)

    return hook


def _index(patch: NodePatch, axes: SiteAxes) -> list[int | slice]:
    index: list[int | slice] = [slice(None)] * (axes.ndim - 1)
    fields = ((axes.position, patch.position), (axes.head, patch.head), (axes.neuron, patch.neuron))
    for axis, value in fields:
        if axis is not None and value is not None:
            index[axis - 1] = value
    return index
