"""One suite over the tiny twin of every preset: it trains, round-trips through a checkpoint,
and TransformerLens patching runs on it. A new preset is covered with no new test."""

from __future__ import annotations

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
