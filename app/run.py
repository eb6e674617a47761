"""One request's run of an offered model: the page's input made into the model's input, and
the activations the request needs, collected while this request alone runs the model (hooks
on a shared model are shared state; `ModelRegistry.running` holds the model's lock)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from app.inputs import decode_png, example_input, patch_labels, pixel_scale
from app.models import ModelRegistry
from app.prompts import checked_text, encode
from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.config import ModelConfig
from workbench.errors import InputError
from workbench.options import Patches, Tokens


@dataclass(frozen=True)
class Prepared:
    """The model's input for one example ([1, ...]), a label per position, and the token ids
    of a text model (None for images and series)."""

    inputs: Tensor
    labels: list[str]
    ids: list[int] | None
    description: str = ""  # what an image or series input is

    def token_ids(self) -> list[int]:
        """The token ids of a text model's input."""
        if self.ids is None:
            raise InputError(f"{self.description or 'this input'} is not token ids")
        return self.ids


UPLOADED = "uploaded image"  # the prompt of a vision model that shows the page's upload


def prepare(ckpt: Checkpoint, prompt: object, upload: object = None) -> Prepared:
    """The input the page describes: a prompt for a text model; for a vision or series model
    `sample N` (the N-th sample of its task), or for a vision model the uploaded image."""
    config = ckpt.model.config
    if isinstance(config.input, Tokens):
        ids, labels = encode(ckpt, prompt)
        return Prepared(torch.tensor([ids]), labels, ids)
    prompt = checked_text(prompt)
    if prompt.strip() == UPLOADED and isinstance(config.input, Patches):
        if upload is None:
            raise InputError("no image is uploaded: upload a PNG, or type sample 0")
        image = decode_png(upload, config, pixel_scale(ckpt))
        return Prepared(image, patch_labels(config), None, "the uploaded image")
    words = prompt.split()
    if (
        len(words) != 2
        or words[0] != "sample"
        or not words[1].isascii()
        or not words[1].isdigit()
        or len(words[1]) > 9
    ):
        upload_too = (
            f" or {UPLOADED!r} (after an upload)" if isinstance(config.input, Patches) else ""
        )
        raise InputError(
            f"this model reads {config.input.KIND}: type sample N (N = 0, 1, ...: a sample "
            f"of its task){upload_too}"
        )
    example = example_input(ckpt, int(words[1]))
    return Prepared(example.inputs, list(example.labels), None, example.description)


def collect(
    registry: ModelRegistry,
    model_name: object,
    prepared: Prepared,
    hooks: Callable[[ModelConfig], list[str]],
) -> dict[str, Tensor]:
    """The activations at `hooks(config)` for a prepared input (batch dimension dropped)."""
    with registry.running(model_name) as ckpt:
        wanted = hooks(ckpt.model.config)
        with torch.no_grad():
            _, cache = ckpt.model.run_with_cache(prepared.inputs, names_filter=wanted)
    return {hook: cache[hook][0] for hook in wanted}


def hook_values(
    registry: ModelRegistry, model_name: object, prepared: Prepared, hook: str
) -> Tensor:
    """One hook point's values for a prepared input, as the hook point holds them (with its
    batch dimension, when it has one)."""
    with registry.running(model_name) as ckpt, torch.no_grad():
        _, cache = ckpt.model.run_with_cache(prepared.inputs, names_filter=[hook])
    return cache[hook]


def pattern_hooks(config: ModelConfig) -> list[str]:
    return [names.attn_pattern(i) for i in range(config.n_layers)]


def attention_patterns(
    registry: ModelRegistry, model_name: object, prompt: object, upload: object = None
) -> tuple[Tensor, Prepared]:
    """The patterns [layer, head, query, key] of the page's input, and the input (from
    the registry's `recent` store when this server has just computed them). The input is
    prepared outside the model's lock (no model runs for it) and keyed by what the model
    reads, so that two spellings of one input share an entry and the store's keys stay small."""
    prepared = prepare(registry.checkpoint(model_name), prompt, upload)
    key = ("patterns", model_name, _digest(prepared))
    if (found := registry.recent.get(key)) is not None:
        return found
    with registry.running(model_name):  # a request for the same input waits, then finds it
        if (found := registry.recent.get(key)) is not None:
            return found
        acts = collect(registry, model_name, prepared, pattern_hooks)
        found = torch.stack(list(acts.values())), prepared
        registry.recent.put(key, found, found[0])
    return found


def _digest(prepared: Prepared) -> str:
    inputs = prepared.inputs.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{inputs.dtype} {list(inputs.shape)}".encode())
    digest.update(inputs.numpy().tobytes())
    digest.update("\0".join(prepared.labels).encode())
    return digest.hexdigest()
