"""The site and node vocabulary (workbench.sites): every site names the hook point the four
tables it replaced named, its declared axes are the hook schema's on every preset, and names
parse back to the objects that spell them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench import names
from workbench.errors import ConfigError, InputError, UnknownNameError
from workbench.sites import AXIS_DIMS, Axis, Edge, Reads, Receiver, Sender, Site, sites

GOLDEN = Path(__file__).parents[1] / "golden" / "hooks"

# the tables kept by hand before the vocabulary, as they were (circuits/sites.py,
# probes/sites.py's getattr(names, site), probes/neuron_path.py, probes/invert.py)
OLD_PATCH = {
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
OLD_PROBE = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "mlp_post")
OLD_NEURON = {"mlp_post": "post", "mlp_pre": "pre"}
OLD_INVERTIBLE = ("resid_pre", "resid_mid", "resid_post")
PRESETS = (
    "gpt2-small-tiny",
    "llama-7b-tiny",
    "pythia-160m-tiny",
    "bert-base-tiny",
    "kan-small-tiny",
)


def golden(preset: str) -> dict[str, tuple[str, ...]]:
    return {
        h["name"]: tuple(h["dims"]) for h in json.loads((GOLDEN / f"{preset}.json").read_text())
    }


@pytest.mark.parametrize("preset", PRESETS)
def test_every_site_names_the_hook_the_old_tables_named(preset: str) -> None:
    schema = golden(preset)
    n_layers = 1 + max(int(h.split(".")[1]) for h in schema if h.startswith("blocks."))
    assert [s.value for s in Site] == list(OLD_PATCH)  # the same names, in the same order
    for layer in range(n_layers):
        for site in Site:
            assert site.hook(layer) == OLD_PATCH[site.value](layer)
        for site in OLD_PROBE:
            assert Site(site).hook(layer) == getattr(names, site)(layer)
        for site, which in OLD_NEURON.items():
            assert Site(site).hook(layer) == names.mlp(layer, which)
    # the sites this preset has are those its schema has, at every layer alike
    has = {s for s in Site if s.hook(0) in schema}
    assert has == {s for s in Site if s.hook(n_layers - 1) in schema}
    assert Site.RESID_PRE in has


def test_the_analyses_subsets_are_filters_of_the_vocabulary() -> None:
    from circuits.sites import SITES as PATCH
    from probes.invert import INVERTIBLE_SITES
    from probes.neuron_path import NEURON_SITES
    from probes.sites import SITES as PROBE

    assert tuple(Site) == PATCH
    assert tuple(OLD_NEURON) == NEURON_SITES  # the default (mlp_post) first, as the page shows
    assert INVERTIBLE_SITES == OLD_INVERTIBLE
    # a probe reads one vector per position: the old table, and mlp_pre (no head axis either)
    assert sites(without=Axis.HEAD) == PROBE
    assert set(PROBE) == {*OLD_PROBE, "mlp_pre"}
    assert sites(axis=Axis.NEURON) == (Site.MLP_PRE, Site.MLP_POST)


@pytest.mark.parametrize("preset", sorted(p.stem for p in GOLDEN.glob("*.json")))
def test_declared_axes_are_the_hook_schemas(preset: str) -> None:
    schema = golden(preset)
    for site in Site:
        for layer in (0, 1):
            dims = schema.get(site.hook(layer))
            if dims is None:
                continue
            found = {axis for axis in Axis if set(dims) & set(AXIS_DIMS[axis])}
            assert found == set(site.axes), (site, dims)


def test_parse_gives_a_clear_error_listing_the_valid_names() -> None:
    assert Site.parse("z") is Site.Z and Site.parse(Site.K) is Site.K
    with pytest.raises(
        InputError, match="unknown patch site 'resid'; closest: 'resid_pre', 'resid_mid'"
    ):
        Site.parse("resid", what="patch site")
    with pytest.raises(UnknownNameError, match="All 13 sites: attn_out, k, mlp_out"):
        Site.parse("nope")
    with pytest.raises(InputError, match="unknown neuron site 'z'.*All 2 neuron sites"):
        Site.parse("z", among=(Site.MLP_PRE, Site.MLP_POST), what="neuron site")
    with pytest.raises(InputError, match="unknown site 'None'"):
        Site.parse(None)  # type: ignore[arg-type]


def test_node_names_are_the_stored_names_and_parse_back() -> None:
    senders = [Sender.embed(), Sender(0, 2), Sender(3)]
    assert [s.name for s in senders] == ["embed", "a0.h2", "m3"]
    assert [s.hook for s in senders] == [
        names.resid_pre(0),
        names.attn_result(0),
        names.mlp_out(3),
    ]
    receivers = [Receiver(1, Reads.K, 0), Receiver(2, Reads.MLP), Receiver.logits(4)]
    assert [r.name for r in receivers] == ["a1.h0.k", "m2", "logits"]
    assert [Sender.parse(s.name) for s in senders] == senders
    assert [Receiver.parse(r.name, n_layers=4) for r in receivers] == receivers
    edge = Edge.between(senders[1], receivers[0])
    assert edge == Edge("a0.h2", "a1.h0.k") == Edge.parse("a0.h2 -> a1.h0.k")
    assert edge.name == "a0.h2->a1.h0.k"
    assert sorted(reversed(senders), key=lambda s: s.order) == senders
    assert Sender(0, 3).order < Sender(0).order < Sender(1, 0).order  # heads, then the MLP
    for bad in ("a0", "h1", "m", "embedding"):
        with pytest.raises(ConfigError, match="a sender is"):
            Sender.parse(bad)
    with pytest.raises(ConfigError, match="a receiver is"):
        Receiver.parse("a0.h1", n_layers=2)
    with pytest.raises(ConfigError, match="sender->receiver"):
        Edge.parse("a0.h1")
