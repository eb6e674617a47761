"""The paper's claim, trained (slow; CI runs it beside its HOT and TL3 stages, one thread):
hist at its Table 1 setting reaches Table 1's 100% test accuracy as the best of seeds,
and the program decompiled from that run equals the model on every token.

Hist's Table 1 setting is the shape of the program the authors ship for it (their
programs/rasp/hist, the run of their seed 1 that scores Table 1's 100.0): one layer, 2 + 2
heads, 1 + 1 MLPs, with their RASP script's other settings (our `LearnSettings` defaults).
A single seed can collapse (ours at seed 0 ends near 46%, as the issue reports theirs near
44%), hence the best of several: seeds are tried in order until one reaches 100%. The runs
train as `learn` does by default, the step compiled (8,000 steps). Here seed 1 reaches 100%
and seed 0 ends near 46%; the test allows the authors' seed range, 0-4, so that another
CPU's rounding, which can send a run elsewhere, still leaves draws."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rasp.learned import tasks
from rasp.learned.decompile import decompile
from rasp.learned.train import LearnSettings, learn


@pytest.mark.slow
@pytest.mark.long_training
@pytest.mark.timeout(3600)  # two or three runs of ~4 minutes, beside other work in CI
def test_hist_at_its_table_1_setting_reaches_100_percent_as_the_best_of_seeds(
    tmp_path: Path,
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = {}
    try:
        for seed in range(5):  # in order, stopping at the first that reaches 100%
            run = tmp_path / f"hist-seed{seed}"
            shape = tasks.TABLE_1_SHAPES["hist"]
            settings = LearnSettings(task="hist", seed=seed, **shape)  # type: ignore[arg-type]
            results[run] = learn(settings, run, progress=False).metrics["test_accuracy"]
            if results[run] == 1.0:
                break
    finally:
        torch.set_num_threads(threads)
    best = max(results, key=results.__getitem__)
    assert results[best] == 1.0, f"test accuracy per seed: {list(results.values())}"

    report = decompile(best).check()
    for split in ("train", "val", "test"):
        assert report[split]["tokens"] > 0
        for route in ("program", "frozen", "rasp"):
            assert report[split][f"{route}_disagrees"] == 0, (split, route)
    assert report["test"]["accuracy"] == 1.0
