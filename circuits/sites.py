"""Patch sites on a model: the hook point a site (`workbench.sites.Site`) names at a layer and
which axes of that hook a patch can index (position, head, neuron). The axes' places come
from the model's hook schema, so a site means the same thing on every variant that has it."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.errors import InputError
from workbench.model import Transformer
from workbench.sites import AXIS_DIMS, Axis, Site

SITES: tuple[Site, ...] = tuple(Site)  # every site can be patched


@dataclass(frozen=True)
class SiteAxes:
    """Where in a hook's tensor (batch first) a patch indexes; None where it has no such axis."""

    hook: str
    ndim: int
    position: int | None
    head: int | None
    neuron: int | None
    sizes: tuple[int | None, ...]  # per axis, None where it varies (batch, positions)


def site_axes(model: Transformer, site: str | Site, layer: int) -> SiteAxes:
    """The hook point `site` names at `layer` and its patchable axes; a clear error for an
    unknown site, a layer out of range, or a site this model does not have."""
    site = Site.parse(site, among=SITES, what="patch site")
    n_layers = model.config.n_layers
    if not 0 <= layer < n_layers:
        raise InputError(f"layer {layer} is out of range: this model has layers 0..{n_layers - 1}")
    hook = site.hook(layer)
    specs = {spec.name: spec for spec in model.hook_specs()}
    if hook not in specs:
        raise InputError(
            f"this model has no {site.value!r} site ({hook}): its architecture does not compute "
            "it; `workbench hooks` lists the hook points it has"
        )
    dims = specs[hook].dims

    def axis(kind: Axis) -> int | None:
        found = [i for i, d in enumerate(dims) if d in AXIS_DIMS[kind]]
        return found[0] if found else None

    return SiteAxes(
        hook,
        len(dims),
        axis(Axis.POSITION),
        axis(Axis.HEAD),
        axis(Axis.NEURON),
        specs[hook].shape,
    )
