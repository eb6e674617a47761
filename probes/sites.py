"""The hook points a probe reads: one per layer of a site (`resid_post` -> blocks.{l}...)."""

from __future__ import annotations

from workbench.errors import InputError
from workbench.sites import Axis, Site, sites

# a probe or a decomposition reads one vector per position: every site without a head axis
SITES: tuple[Site, ...] = sites(without=Axis.HEAD)


def site_hooks(model, site: Site, layers: list[int] | None) -> tuple[list[int], list[str]]:
    """The layers (all by default) and their hook names, each checked against the model."""
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else layers
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise InputError(f"layers {bad} are out of range: the model has layers 0..{n_layers - 1}")
    hooks = [site.hook(layer) for layer in layers]
    missing = [h for h in hooks if h not in model.hook_dict]
    if missing:
        raise InputError(f"this model has no {missing[0]} (site {site.value!r}); pick another site")
    return layers, hooks
