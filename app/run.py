"""One request's run of an offered model: the page's input made into the model's input, and
the activations the request needs, collected while this request alone runs the model (hooks
on a shared model are shared state; `ModelRegistry.running` holds the model's lock)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from app.models import ModelRegistry
from app.prompts import encode
from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.config import InputKind, ModelConfig
from workbench.errors import InputError


@dataclass(frozen=True)
class Prepared:
    """The model's input for one example ([1, ...]), a label per position, and the token ids
    of a text model (None for images and series)."""

    inputs: Tensor
    labels: list[str]
    ids: list[int] | None


def prepare(ckpt: Checkpoint, prompt: object, upload: object = None) -> Prepared:
    """The input the page describes: a prompt for a text model."""
    kind = ckpt.model.config.input
    if kind is not InputKind.TOKENS:
        raise InputError(f"{kind.value} models are not shown yet; choose a text model")
    ids, labels = encode(ckpt, prompt)
    return Prepared(torch.tensor([ids]), labels, ids)


def collect(
    registry: ModelRegistry,
    model_name: object,
    prompt: object,
    hooks: Callable[[ModelConfig], list[str]],
    upload: object = None,
) -> tuple[dict[str, Tensor], Prepared]:
    """The activations at `hooks(config)` for the page's input (batch dimension dropped)."""
    with registry.running(model_name) as ckpt:
        prepared = prepare(ckpt, prompt, upload)
        wanted = hooks(ckpt.model.config)
        with torch.no_grad():
            _, cache = ckpt.model.run_with_cache(prepared.inputs, names_filter=wanted)
    return {hook: cache[hook][0] for hook in wanted}, prepared


def pattern_hooks(config: ModelConfig) -> list[str]:
    return [names.attn_pattern(i) for i in range(config.n_layers)]


def attention_patterns(
    registry: ModelRegistry, model_name: object, prompt: object, upload: object = None
) -> tuple[Tensor, Prepared]:
    """The patterns [layer, head, query, key] of the page's input, and the input (from
    the registry's `recent` store when this server has just computed them)."""
    key = ("patterns", repr(model_name), repr(prompt), _digest(upload))
    if (found := registry.recent.get(key)) is not None:
        return found
    with registry.running(model_name):  # a request for the same input waits, then finds it
        if (found := registry.recent.get(key)) is not None:
            return found
        acts, prepared = collect(registry, model_name, prompt, pattern_hooks, upload)
        found = torch.stack(list(acts.values())), prepared
        registry.recent.put(key, found, found[0])
    return found


def _digest(upload: object) -> str:
    return hashlib.sha256(repr(upload).encode()).hexdigest()
