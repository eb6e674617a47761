"""Position/context decomposition of hidden states ("Uncovering hidden geometry in
Transformers via disentangling position and context", Song & Zhong 2023).

For hidden states h[c, t] of context c at position t (every context the same length T):
h = mean + pos[t] + ctx[c] + resid[c, t], with pos[t] = mean over contexts of h[., t] - mean
and ctx[c] = mean over positions of h[c, .] - mean. The estimate streams over batches of
contexts and keeps only sums (of h, of h per position, of |h|^2) and one mean vector per
context, never the states themselves. The design is balanced, so the sums of squares add
up exactly: total = C * sum_t |pos[t]|^2 + T * sum_c |ctx[c]|^2 + residual.

Per layer it reports the paper's measurements:
- the share of variance in each component;
- the positional basis: its rank (components to reach `energy` of its variance), the top
  components' explained ratios, smoothness (mean cosine of consecutive pos[t]), and 2-D and
  3-D PCA coordinates (the spiral);
- the contexts' cluster structure: k-means on ctx[c] against the contexts' labels (adjusted
  Rand index), when labels are given, and 2-D PCA coordinates of the ctx[c] (to draw them);
- near-orthogonality of position and context: cosines of the principal angles between the
  positional and context subspaces that hold `energy` of each (at most `k` dimensions)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from probes.sites import SITES, site_hooks
from workbench.errors import InputError
from workbench.sites import Site


@dataclass(frozen=True)
class LayerGeometry:
    layer: int
    share: dict[str, float]  # position, context, residual: fractions of the total variance
    pos_rank: int  # components holding `energy` of the positional variance
    pos_explained: tuple[float, ...]  # explained ratios of the top positional components
    pos_smoothness: float  # mean cosine similarity of consecutive positions
    pos_pca: tuple[tuple[float, ...], ...]  # [T, 3] coordinates on the top 3 components
    ctx_ari: float | None  # k-means clusters of ctx[c] against the labels
    cosines: tuple[float, ...]  # principal-angle cosines, positional vs context subspaces
    ctx_pca: tuple[tuple[float, ...], ...] = ()  # [C, 2] coordinates on the top 2 components


@dataclass(frozen=True)
class Decomposition:
    site: str
    n_contexts: int
    n_positions: int
    layers: tuple[LayerGeometry, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "site": self.site,
                "n_contexts": self.n_contexts,
                "n_positions": self.n_positions,
                "layers": [vars(g) for g in self.layers],
            }
        )


@dataclass
class _Sums:
    """Streaming sums for one layer."""

    total: np.ndarray | None = None  # sum of h, [d]
    per_pos: np.ndarray | None = None  # sum over contexts of h[., t], [T, d]
    square: float = 0.0  # sum of |h|^2
    ctx: list[np.ndarray] = field(default_factory=list)  # mean over positions of h[c, .]

    def add(self, h: np.ndarray) -> None:  # [B, T, d]
        if self.total is None or self.per_pos is None:
            self.total, self.per_pos = np.zeros(h.shape[-1]), np.zeros(h.shape[1:])
        self.total += h.sum(axis=(0, 1))
        self.per_pos += h.sum(axis=0)
        self.square += float(np.square(h).sum())
        self.ctx.extend(h.mean(axis=1))


def decompose_states(
    batches: Iterable[np.ndarray],
    *,
    labels: np.ndarray | None = None,
    energy: float = 0.95,
    k: int = 8,
    layer: int = 0,
) -> LayerGeometry:
    """The decomposition of states streamed as [batch, T, d] arrays (one layer)."""
    sums = _Sums()
    for h in batches:
        sums.add(np.asarray(h, dtype=np.float64))
    return _geometry(sums, labels, energy, k, layer)


def _geometry(
    sums: _Sums, labels: np.ndarray | None, energy: float, k: int, layer: int
) -> LayerGeometry:
    if sums.total is None or sums.per_pos is None or len(sums.ctx) < 2:
        raise InputError("the decomposition needs at least 2 contexts")
    n_ctx, n_pos = len(sums.ctx), sums.per_pos.shape[0]
    if n_pos < 2:
        raise InputError("the decomposition needs contexts of at least 2 positions")
    mean = sums.total / (n_ctx * n_pos)
    pos = sums.per_pos / n_ctx - mean  # [T, d]
    ctx = np.stack(sums.ctx) - mean  # [C, d]
    ss_total = sums.square - n_ctx * n_pos * float(mean @ mean)
    ss_pos = n_ctx * float(np.square(pos).sum())
    ss_ctx = n_pos * float(np.square(ctx).sum())
    share = {
        "position": ss_pos / ss_total,
        "context": ss_ctx / ss_total,
        "residual": max(0.0, ss_total - ss_pos - ss_ctx) / ss_total,
    }
    pos_values, pos_basis = _pca(pos)
    explained = pos_values / pos_values.sum() if pos_values.sum() > 0 else pos_values
    rank = int(np.searchsorted(np.cumsum(explained), energy) + 1)
    coords = pos @ pos_basis[:, :3]
    unit = pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
    smoothness = float((unit[1:] * unit[:-1]).sum(axis=1).mean())
    ctx_values, ctx_basis = _pca(ctx)
    ctx_rank = int(np.searchsorted(np.cumsum(ctx_values / ctx_values.sum()), energy) + 1)
    # the subspaces holding `energy` of each component (beyond them lies noise, which
    # overlaps everywhere in a high-dimensional space)
    pos_top, ctx_top = pos_basis[:, : min(rank, k)], ctx_basis[:, : min(ctx_rank, k)]
    cosines = np.linalg.svd(pos_top.T @ ctx_top, compute_uv=False)
    return LayerGeometry(
        layer,
        share,
        rank,
        tuple(float(x) for x in explained[:k]),
        smoothness,
        tuple(tuple(float(v) for v in row) for row in coords),
        _clusters(ctx, labels),
        tuple(float(c) for c in cosines),
        tuple(tuple(float(v) for v in row) for row in ctx @ ctx_basis[:, :2]),
    )


def _pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variances and orthonormal directions ([d, r]) of the rows of x (already centred)."""
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    return np.square(singular), vt.T


def _clusters(ctx: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    labels = np.asarray(labels)
    if len(labels) != len(ctx):
        raise InputError(f"labels has {len(labels)} entries, but there are {len(ctx)} contexts")
    n = len(np.unique(labels))
    if n < 2:
        return None
    # sklearn is untyped: pyright takes the type of n_init from its default, "auto"
    kmeans = KMeans(n_clusters=n, n_init=10, random_state=0)  # pyright: ignore[reportArgumentType]
    found = kmeans.fit_predict(ctx)
    return float(adjusted_rand_score(labels, found))


def decompose(
    model,
    contexts: Tensor,
    *,
    site: str = "resid_post",
    layers: list[int] | None = None,
    labels: np.ndarray | None = None,
    batch_size: int = 32,
    energy: float = 0.95,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Decomposition:
    """Decompose `site`'s hidden states over `contexts` [C, T] (token ids), per layer;
    `progress` shows a bar over the batches; `on_progress(done, total)` is called after each
    batch, with no hook on the model."""
    from rich.progress import track

    site = Site.parse(site, among=SITES, what="site")
    layers, hooks = site_hooks(model, site, layers)
    if contexts.ndim != 2 or len(contexts) < 2:
        raise InputError(
            f"contexts must be [n_contexts >= 2, positions] token ids, got {list(contexts.shape)}"
        )
    sums = {hook: _Sums() for hook in hooks}
    starts = range(0, len(contexts), batch_size)
    for done, lo in enumerate(track(starts, "decomposing", disable=not progress), 1):
        with torch.no_grad():
            _, cache = model.run_with_cache(contexts[lo : lo + batch_size], names_filter=hooks)
        for hook in hooks:
            sums[hook].add(cache[hook].double().cpu().numpy())
        if on_progress is not None:
            on_progress(done, len(starts))
    geometry = tuple(
        _geometry(sums[hook], labels, energy, 8, layer)
        for layer, hook in zip(layers, hooks, strict=True)
    )
    return Decomposition(site, len(contexts), contexts.shape[1], geometry)
