"""Patch sites: the short names a sweep is written in (`resid_pre`, `z`, `mlp_post`, ...), the
hook point each names at a layer, and which axes of that hook a patch can index (position,
head, neuron). The axes come from the model's hook schema, so a site means the same thing on
every variant that has it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench import names
from workbench.errors import InputError, unknown
from workbench.model import Transformer

SITES: dict[str, Callable[[int], str]] = {
    "resid_pre": names.resid_pre,
    "resid_mid": names.resid_mid,
    "resid_post": names.resid_post,
    "attn_out": names.attn_out,
    "mlp_out": names.mlp_out,
    "q": lambda layer: names.attn(layer, "q"),
    "k": lambda layer: names.attn(layer, "k"),
    "v": lambda layer: names.attn(layer, "v"),
    "pattern": names.attn_pattern,
    "z": names.attn_z,
    "result": names.attn_result,
    "mlp_pre": lambda layer: names.mlp(layer, "pre"),
    "mlp_post": names.mlp_post,
}

POSITION_DIMS = ("pos", "query_pos")  # a pattern is patched by query position
HEAD_DIMS = ("head", "kv_head")
NEURON_DIMS = ("d_mlp",)


@dataclass(frozen=True)
class SiteAxes:
    """Where in a hook's tensor (batch first) a patch indexes; None where it has no such axis."""

    hook: str
    ndim: int
    position: int | None
    head: int | None
    neuron: int | None
    sizes: tuple[int | None, ...]  # per axis, None where it varies (batch, positions)


def site_axes(model: Transformer, site: str, layer: int) -> SiteAxes:
    """The hook point `site` names at `layer` and its patchable axes; a clear error for an
    unknown site, a layer out of range, or a site this model does not have."""
    if site not in SITES:
        raise unknown("patch site", site, SITES)
    n_layers = model.config.n_layers
    if not 0 <= layer < n_layers:
        raise InputError(f"layer {layer} is out of range: this model has layers 0..{n_layers - 1}")
    hook = SITES[site](layer)
    specs = {spec.name: spec for spec in model.hook_specs()}
    if hook not in specs:
        raise InputError(
            f"this model has no {site!r} site ({hook}): its architecture does not compute it; "
            f"`workbench hooks` lists the hook points it has"
        )
    dims = specs[hook].dims

    def axis(kinds: tuple[str, ...]) -> int | None:
        found = [i for i, d in enumerate(dims) if d in kinds]
        return found[0] if found else None

    return SiteAxes(
        hook, len(dims), axis(POSITION_DIMS), axis(HEAD_DIMS), axis(NEURON_DIMS), specs[hook].shape
    )
