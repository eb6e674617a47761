"""One suite over the tiny twin of every preset: it trains, round-trips through a checkpoint,
and TransformerLens patching runs on it. A new preset is covered with no new test."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformer_lens import patching

import workbench
from tests.conftest import example_input, task_for, tiny_presets
from workbench.checkpoint import save
from workbench.tasks import make_task
from workbench.training import TrainSettings, train

SETTINGS = TrainSettings(steps=30, batch_size=32, lr=3e-3, eval_every=15, eval_size=128)


@pytest.mark.parametrize("preset", tiny_presets())
def test_short_training_lowers_the_loss(preset: str) -> None:
    history = train(preset, task_for(preset), SETTINGS, progress=False).metrics["history"]
    assert history[-1]["eval_loss"] < history[0]["eval_loss"]


@pytest.mark.parametrize("preset", tiny_presets())
def test_checkpoint_round_trip_is_bit_identical(preset: str, tmp_path: Path) -> None:
    model = workbench.build(preset, seed=4)
    save(model, tmp_path / preset)
    loaded = workbench.load(tmp_path / preset)
    assert loaded.config == model.config
    inputs = example_input(model, 2, 9)
    assert torch.equal(loaded(inputs), model(inputs))


@pytest.mark.parametrize("preset", [p for p in tiny_presets() if task_for(p) != "forecast"])
def test_transformer_lens_patching_runs(preset: str) -> None:
    name = task_for(preset)
    task = make_task("modadd", p=7) if name == "copy" else make_task(name)
    config = workbench.presets.get_preset(preset).config
    model = workbench.build(preset, **task.model_overrides(config))
    pairs = task.pairs(4, torch.Generator().manual_seed(0))
    _, clean_cache = model.run_with_cache(pairs.clean)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return pairs.logit_diff(logits).mean()

    results = patching.get_act_patch_attn_head_out_all_pos(
        model, pairs.corrupted, clean_cache, metric
    )
    assert results.shape == (model.config.n_layers, model.config.n_heads)
    assert torch.isfinite(results).all()
    # patching every position of the last residual stream gives back the clean metric
    final = workbench.names.resid_post(model.config.n_layers - 1)
    restored = model.run_with_hooks(
        pairs.corrupted, fwd_hooks=[(final, lambda t, hook: clean_cache[final])]
    )
    torch.testing.assert_close(metric(restored), metric(model(pairs.clean)))


@pytest.mark.parametrize("preset", [p for p in tiny_presets() if task_for(p) == "forecast"])
def test_transformer_lens_patching_runs_on_series_models(preset: str) -> None:
    task = make_task("forecast")
    config = workbench.presets.get_preset(preset).config
    model = workbench.build(preset, **task.model_overrides(config))
    gen = torch.Generator().manual_seed(0)
    clean, corrupted = task.sample(4, gen), task.sample(4, gen)
    _, clean_cache = model.run_with_cache(clean.tokens)

    def metric(forecast: torch.Tensor) -> torch.Tensor:
        return -task.loss(forecast, clean)

    results = patching.get_act_patch_resid_pre(model, corrupted.tokens, clean_cache, metric)
    assert results.shape == (model.config.n_layers, task.variates)
    assert torch.isfinite(results).all()


# largest logit error over the largest logit, half-precision compute against float32 compute
# with the same (rounded) weights; measured at most 2.6% (bf16) and 0.13% (fp16), the same
# with ATEN_CPU_CAPABILITY=default, avx2 and avx512
HALF_PRECISION = {torch.bfloat16: 0.1, torch.float16: 0.01}


@pytest.mark.parametrize("dtype", list(HALF_PRECISION), ids=str)
@pytest.mark.parametrize("preset", tiny_presets())
def test_runs_in_half_precision(preset: str, dtype: torch.dtype) -> None:
    # every attention kind, DeltaNet's triangular solve and the pooling mixer included
    model = workbench.build(preset, seed=1).to(dtype)
    same_weights = copy.deepcopy(model).float()
    inputs = example_input(model, 2, 12, torch.Generator().manual_seed(0))
    half_inputs = inputs.to(dtype) if inputs.is_floating_point() else inputs
    logits = model(half_inputs)
    assert logits.dtype == dtype and torch.isfinite(logits).all()
    reference = same_weights(inputs)
    error = (logits.float() - reference).abs().max() / reference.abs().max()
    assert error < HALF_PRECISION[dtype]
