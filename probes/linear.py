"""Linear probes: does a hook site linearly encode a label, layer by layer?

For every layer, a scikit-learn probe (logistic regression for class labels, ridge regression
for numbers) is fitted from the site's activations to the labels on a training split and
scored on a held-out split (accuracy, or R^2). A control task (Hewitt & Liang 2019,
"Designing and Interpreting Probes with Control Tasks") gives every input token type a random
label drawn from the labels' own distribution; the same probe fitted to it shows how much the
probe memorises token identity. Selectivity = test score - control score.

Labels are per sequence ([batch], read at `position`) or per token ([batch, pos], every
position whose label is not `ignore`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from probes.sites import SITES, site_hooks
from workbench.errors import InputError
from workbench.sites import Site

KINDS = ("logistic", "ridge")


@dataclass(frozen=True)
class ProbeResult:
    site: str
    kind: str
    layers: tuple[int, ...]
    train: tuple[float, ...]  # accuracy (logistic) or R^2 (ridge) on the training split
    test: tuple[float, ...]  # the same on the held-out split
    control: tuple[float, ...]  # held-out score of the probe fitted to the control task
    n_train: int
    n_test: int

    @property
    def selectivity(self) -> tuple[float, ...]:
        return tuple(t - c for t, c in zip(self.test, self.control, strict=True))

    def to_json(self) -> str:
        return json.dumps({**vars(self), "selectivity": list(self.selectivity)})


def linear_probe(
    model,
    tokens: Tensor,
    labels: Tensor,
    *,
    site: str = "resid_post",
    position: int = -1,
    kind: str = "logistic",
    layers: list[int] | None = None,
    test_fraction: float = 0.25,
    ignore: int = -100,
    seed: int = 0,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProbeResult:
    """Fit and score one probe per layer (see the module docstring); `progress` shows a
    bar over the layers; `on_progress(done, total)` is called after each layer's probes, with
    no hook on the model."""
    from rich.progress import track
    from sklearn.linear_model import LogisticRegression, Ridge

    site = Site.parse(site, among=SITES, what="probe site")
    if kind not in KINDS:
        raise InputError(f"unknown probe kind {kind!r}; choose logistic or ridge")
    if not 0 <= seed < 2**32:
        raise InputError(f"seed must be in [0, 2**32), got {seed}")
    layers, hooks = site_hooks(model, site, layers)
    where, ids, y = _select(tokens, labels, position, ignore)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = round(len(y) * test_fraction)
    if n_test < 1 or len(y) - n_test < 2:
        raise InputError(
            f"{len(y)} labelled examples are too few to split {test_fraction:.0%} off for "
            "testing; give more prompts"
        )
    test, train = order[:n_test], order[n_test:]
    control = _control(ids, y, rng)
    for name, target in (("labels", y), ("control labels", control)):
        if kind == "logistic" and len(np.unique(target[train])) < 2:
            raise InputError(
                f"the training split's {name} hold one class only ({len(train)} examples): "
                "a classifier needs two; give more prompts, or probe with kind='ridge'"
            )
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hooks)
    scores: dict[str, list[float]] = {"train": [], "test": [], "control": []}
    for done, hook in enumerate(track(hooks, "fitting probes", disable=not progress), 1):
        x = cache[hook][where].double().cpu().numpy()
        probe = LogisticRegression(max_iter=2000) if kind == "logistic" else Ridge(alpha=1.0)
        probe.fit(x[train], y[train])
        scores["train"].append(float(probe.score(x[train], y[train])))
        scores["test"].append(float(probe.score(x[test], y[test])))
        probe.fit(x[train], control[train])
        scores["control"].append(float(probe.score(x[test], control[test])))
        if on_progress is not None:
            on_progress(done, len(hooks))
    return ProbeResult(
        site,
        kind,
        tuple(layers),
        tuple(scores["train"]),
        tuple(scores["test"]),
        tuple(scores["control"]),
        len(train),
        len(test),
    )


def _select(
    tokens: Tensor, labels: Tensor, position: int, ignore: int
) -> tuple[tuple[Tensor, Tensor], np.ndarray, np.ndarray]:
    """The (batch, position) index of every labelled example, its token id and its label."""
    batch, n_pos = tokens.shape[:2]
    if labels.shape == (batch,):
        rows = torch.arange(batch)
        cols = torch.full((batch,), position % n_pos)
        flat = labels
    elif labels.shape == (batch, n_pos):
        keep = labels != ignore
        rows, cols = keep.nonzero(as_tuple=True)
        flat = labels[keep]
    else:
        raise InputError(
            f"labels must have shape [batch] = [{batch}] or [batch, pos] = [{batch}, {n_pos}] "
            f"like the tokens, got {list(labels.shape)}"
        )
    if len(flat) == 0:
        raise InputError("no labelled examples: every label is the ignore value")
    ids = tokens[rows, cols].cpu().numpy()
    return (rows, cols), ids, flat.cpu().numpy()


def _control(ids: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each token type's random label, drawn from the labels' distribution."""
    table = {int(t): y[rng.integers(len(y))] for t in np.unique(ids)}
    return np.array([table[int(t)] for t in ids])


def task_probe(
    model,
    batch,
    *,
    site: str = "resid_post",
    kind: str = "logistic",
    seed: int = 0,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProbeResult:
    """`linear_probe` for a task batch's next-token targets, at every labelled position
    (what `workbench probe` fits)."""
    from workbench.tasks.base import IGNORE

    return linear_probe(
        model, batch.tokens, batch.targets, site=site, kind=kind, ignore=IGNORE, seed=seed,
        progress=progress, on_progress=on_progress,
    )  # fmt: skip
