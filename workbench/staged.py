"""The staged forward pass: the core's second declared interface (the first is the hooked-model
protocol: hook points with TransformerLens's names, which any `HookedRootModule` offers).

A workbench `Transformer` also runs in pieces:

    stream = model.start(tokens)                 # the embedded input: what block 0 reads
    stream = model.advance(stream, layer)        # blocks stream.layer .. layer - 1
    logits = model.finish(stream, keep=-1)       # the rest, the final norm and the unembedding

so that a computation shared by many runs (a clean prefix, the layers before a patch) is done
once and `Stream.tile`d; `finish` can compute one position's logits, or a few tokens' columns.
A `StreamReader` gives each reader of the stream (a head's query, key or value input, an MLP,
the logits) its own input: edge patching and gradient readers are built on it. A `KVCache`
runs later positions alone against an earlier prefix (generation, inversion).

What needs this interface: batched activation patching (`circuits.engine`), edge patching and
discovery (`circuits.edges`, `circuits.acdc`, `circuits.eap`), influential neuron paths
(`probes.neuron_path`) and exact inversion (`probes.invert`). Everything else that reads
and writes hooks (activation caches, TransformerLens's patching helpers, head scores, the
dashboard's views) works on any `HookedRootModule`, a TransformerLens `TransformerBridge`
included (`tests/convert/test_bridge.py`). Analyses import these names from here, never from
the components.
"""

from __future__ import annotations

from typing import Any

from workbench.components.attention import NO_PADDING, Sequences, SparseHeadInputs
from workbench.components.block import HeadInputs, StreamReader
from workbench.components.cache import KVCache, cache_unsupported
from workbench.errors import InputError
from workbench.model import Stream, Transformer

__all__ = [
    "NO_PADDING",
    "HeadInputs",
    "KVCache",
    "Sequences",
    "SparseHeadInputs",
    "Stream",
    "StreamReader",
    "cache_unsupported",
    "staged_model",
]


def staged_model(model: Any, analysis: str) -> Transformer:
    """`model` if it runs in stages (a workbench `Transformer`), else `InputError` saying what
    `analysis` needs and what works on any hooked model instead."""
    if isinstance(model, Transformer):
        return model
    raise InputError(
        f"{analysis} needs the workbench's staged forward pass (run from a layer, read one "
        f"position, reuse a prefix), which a {type(model).__name__} does not have: load or "
        "convert the model into the workbench (workbench.load, workbench.convert.from_hf); "
        "hook-based analyses (caches, TransformerLens patching, head scores) work on any "
        "HookedRootModule"
    )
