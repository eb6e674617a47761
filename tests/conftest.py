"""Shared fixtures. Tests run offline on CPU with a fixed thread count."""

from __future__ import annotations

import os
from pathlib import Path

# The tests never reach the Hugging Face Hub (read when huggingface_hub is first imported);
# tests/lens/test_hub.py fills a cache in the Hub's layout instead.
os.environ["HF_HUB_OFFLINE"] = "1"
# A run under a hand-set ATEN_CPU_CAPABILITY (as the guide asks for suspicious tests) compiles
# into an inductor cache of its own: torch 2.13 crashed here compiling the learned programs'
# step under avx2 in the cache native kernels were built in (docs/rasp.md).
if (capability := os.environ.get("ATEN_CPU_CAPABILITY")) and (
    "TORCHINDUCTOR_CACHE_DIR" not in os.environ
):
    import getpass
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}_{capability}"
    )

import jaxtyping
import pytest
import torch

# Runtime checks of the core's annotations during the tests: every annotated signature in
# these workbench modules and packages (tensor shapes through jaxtyping, other types through
# beartype; an int passes for a float) is checked on every call. The hook goes in here, before
# workbench is first imported. A package is checked whole (workbench/__init__.py, which only
# re-exports, is not). Left out, and why:
UNCHECKED = {
    # ModelConfig and the options take JSON's values too (lists for tuples, dicts for options
    # and overrides), which their field checks parse after __init__: declared as stored
    "workbench.config": "fields are declared as stored, not as given",
    "workbench.options": "fields are declared as stored, not as given",
    # the model's entry points check their inputs themselves and say what to pass
    # (attention_mask of floats, images for a text model): the hook would answer first
    "workbench.model": "entry points validate their own inputs",
    "workbench.lens": "TransformerLens's entry points validate their own inputs",
}
# Attention and blocks run in every forward pass of every test: checking them costs the
# whole suite most of its run time again, so the default run leaves them out and CI checks
# them in a run of the core's own tests (WORKBENCH_CHECK_HOT=1, .ci/run).
HOT = {
    "workbench.components.attention": "checked with WORKBENCH_CHECK_HOT=1",
    "workbench.components.block": "checked with WORKBENCH_CHECK_HOT=1",
}
if os.environ.get("WORKBENCH_CHECK_HOT") != "1":
    UNCHECKED.update(HOT)
CORE = Path(__file__).parents[1] / "workbench"


def _checked() -> list[str]:
    """Every module of the core but those left out (a package's __init__ is never listed: the
    hook would take its name for the whole package; these only re-export)."""
    names = []
    for path in sorted(CORE.rglob("*.py")):
        name = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
        left_out = any(name == u or name.startswith(u + ".") for u in UNCHECKED)
        if path.name != "__init__.py" and not left_out:
            names.append(name)
    return names


TYPECHECKER = "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))"
jaxtyping.install_import_hook(_checked(), TYPECHECKER)

from workbench.options import Abacus, Patches, Series  # noqa: E402  (after the hook)

torch.set_num_threads(2)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def tiny_presets() -> list[str]:
    from workbench.presets import list_presets

    return [p.name for p in list_presets() if p.tiny_of is not None]


def example_input(model, batch: int, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Valid model input: token ids [batch, min(n, n_ctx)], or images for a vision model."""

    cfg = model.config
    if isinstance(cfg.input, Patches):
        shape = (batch, cfg.input.channels, cfg.input.image_size, cfg.input.image_size)
        return torch.randn(*shape, generator=gen)
    if isinstance(cfg.input, Series):
        return torch.randn(batch, cfg.input.lookback, min(n, cfg.n_ctx), generator=gen)
    return torch.randint(0, cfg.d_vocab, (batch, min(n, cfg.n_ctx)), generator=gen)


def input_length(model, inputs: torch.Tensor) -> int:
    """Sequence length the model sees: tokens, patches plus class token, or variates."""
    if inputs.ndim == 4:
        return model.config.n_ctx
    return inputs.shape[2] if inputs.ndim == 3 else inputs.shape[1]


def task_for(preset: str) -> str:
    """A built-in task every model of this preset can train on."""
    from workbench.presets import get_preset

    config = get_preset(preset).config
    if isinstance(config.input, Patches):
        return "bars"
    if isinstance(config.input, Series):
        return "forecast"
    return "addition" if isinstance(config.pos, Abacus) else "copy"
