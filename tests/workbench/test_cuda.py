"""The same code on CUDA: matches the CPU, keeps tensors on the device, trains. Skipped
without a GPU (CI has none; run on a GPU machine with `pytest -m cuda`)."""

from __future__ import annotations

import pytest
import torch

import workbench
from tests.conftest import example_input, tiny_presets
from workbench import names
from workbench.training import TrainSettings, train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("preset", tiny_presets())
def test_cuda_logits_match_cpu(preset: str) -> None:
    cpu = workbench.build(preset, seed=1)
    gpu = workbench.build(preset, seed=1).to("cuda")
    tokens = example_input(cpu, 3, 11, torch.Generator().manual_seed(0))
    logits, cache = gpu.run_with_cache(tokens.cuda())
    assert logits.device.type == "cuda" and cache[names.resid_pre(0)].device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), cpu(tokens), atol=1e-4, rtol=1e-4)


def test_training_on_cuda_lowers_the_loss() -> None:
    settings = TrainSettings(steps=60, lr=3e-3, eval_every=30, eval_size=128)
    result = train("gelu-2l-tiny", "copy", settings, device="cuda", progress=False)
    history = result.metrics["history"]
    assert history[-1]["eval_loss"] < history[0]["eval_loss"]
    assert next(result.model.parameters()).device.type == "cuda"
