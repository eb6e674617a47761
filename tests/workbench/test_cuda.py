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


def test_learned_program_trains_on_cuda_and_reads_back_as_its_program(tmp_path) -> None:
    """`workbench learn-program --device cuda`: the run trains on the GPU, writes its program,
    and the argmax model read back on the CPU, and its program, give the GPU's outputs."""
    from rasp.learned.model import Sampler
    from rasp.learned.program import hard_predictions, to_program
    from rasp.learned.train import LearnSettings, learn, load

    small = {"n_layers": 1, "cat_heads": 1, "num_heads": 1, "cat_mlps": 1, "num_mlps": 1}
    settings = LearnSettings(task="hist", size=600, epochs=3, batch_size=128, **small)  # type: ignore[arg-type]
    result = learn(settings, tmp_path / "run", device="cuda", progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    tokens = result.data.test.inputs
    with torch.no_grad():
        logits = result.model(torch.as_tensor(tokens).cuda(), Sampler(1.0, None, hard=True))
    on_gpu = logits.argmax(-1).cpu().numpy()
    model = load(tmp_path / "run")[0]
    assert (hard_predictions(model, tokens) == on_gpu).all()
    assert (to_program(model).run(tokens) == on_gpu).all()
