"""A learned program on CUDA (`learn(..., device="cuda")`, as `workbench learn-program
--device cuda`): it trains there, and read back on the CPU it is its program. Skipped without
a GPU (run on a GPU machine with `pytest -m cuda`)."""

from __future__ import annotations

import pytest
import torch

from rasp.learned.model import Sampler
from rasp.learned.program import hard_predictions, to_program
from rasp.learned.train import LearnSettings, learn, load

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_learned_program_trains_on_cuda_and_reads_back_as_its_program(tmp_path) -> None:
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
