"""`circuits.tasks`: task pairs and typed prompt pairs set up a sweep; the sweep reports its
progress and stops cleanly when that report raises; `patched_run` gives one cell's whole run,
whose metric is the cell's number."""

from __future__ import annotations

import itertools

import pytest
import torch

import workbench
from circuits.nodes import NodePatch, patched_run
from circuits.tasks import patch_task, sweep_site, task_setup, typed_pairs, typed_setup
from workbench.errors import InputError
from workbench.tasks import make_task


@pytest.fixture(scope="module")
def trained():
    ckpt = workbench.open_checkpoint("induction-2l")
    spec = ckpt.meta["task"]
    return ckpt.model, make_task(spec["name"], **spec["params"])


def test_progress_counts_every_patch_and_a_raise_stops_the_sweep(trained) -> None:
    model, task = trained
    reports: list[tuple[int, int]] = []
    budget = 2_000_000  # a few passes
    result = patch_task(
        model,
        task,
        "z",
        n_prompts=3,
        memory_budget=budget,
        on_progress=lambda *r: reports.append(r),
    )
    n = len(result.configs)
    assert len(reports) > 2 and reports[-1] == (n, n)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(reports))
    tokens = task.pairs(2, torch.Generator().manual_seed(1)).clean
    with torch.no_grad():
        before = model(tokens)

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        patch_task(model, task, "z", n_prompts=3, memory_budget=budget, on_progress=stop)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), before, rtol=0, atol=0)  # no hook was left


@pytest.mark.parametrize(
    ("site", "ablation", "metric"),
    [
        ("resid_pre", "patch", "logit_diff"),
        ("z", "resample", "prob"),
        ("pattern", "mean", "kl"),
        ("v", "zero", "loss"),
    ],
)
def test_a_patched_run_gives_its_cells_metric(trained, site, ablation, metric) -> None:
    model, task = trained
    setup = task_setup(model, task, ablation=ablation, metric=metric, n_prompts=3, seed=2)
    result = sweep_site(model, setup, site)
    for i in (0, len(result.configs) // 2, len(result.configs) - 1):
        patch = NodePatch(**result.configs[i])
        logits = patched_run(model, setup.target, patch, setup.replacement)
        assert logits.shape[:2] == setup.target.shape
        value = setup.metric(logits[None])[0]
        assert float(value) == pytest.approx(float(result.scores[i]), abs=1e-4)


def test_typed_pairs_default_to_the_top_predictions(trained) -> None:
    model, task = trained
    clean = task.encode("BOS t1 t2 t3 t4 t1 t2 t3")
    corrupted = task.encode("BOS t5 t6 t7 t8 t1 t2 t3")
    pairs = typed_pairs(model, clean, corrupted)
    with torch.no_grad():
        top = model(torch.tensor([clean, corrupted]))[:, -1].argmax(-1)
    assert pairs.answer.tolist() == [int(top[0])] and pairs.wrong.tolist() == [int(top[1])]
    assert task.decode(pairs.answer) == ["t4"]  # the induction answer
    given = typed_pairs(model, clean, corrupted, answer=3, wrong=7)
    assert (int(given.answer[0]), int(given.wrong[0])) == (3, 7)
    setup = typed_setup(model, clean, corrupted, answer=3, wrong=7)
    result = sweep_site(model, setup, "resid_pre", positions="all")
    with torch.no_grad():
        logits = model(given.clean)[0, -1]
    assert result.source_baseline == pytest.approx(float(logits[3] - logits[7]), abs=1e-4)
    assert float(result.scores[0]) == pytest.approx(result.source_baseline, abs=1e-4)  # whole


@pytest.mark.parametrize(
    ("clean", "corrupted", "options", "message"),
    [
        ([0, 1, 2], [0, 1], {}, "the clean prompt has 3 tokens and the corrupted one 2"),
        ([], [], {}, "one of them is empty"),
        ([0, 1], [0, 2], {"ablation": "mean"}, "ablation 'mean' averages or draws"),
        ([0, 1], [0, 2], {"ablation": "resample"}, "choose patch or zero"),
        ([0, 1], [0, 2], {"answer": 3, "wrong": 3}, "the answer and the wrong token are both"),
        ([0, 1], [0, 2], {"answer": 99}, "the answer 99 is not a token id of this model: 0..40"),
        ([0, 1], [0, 2], {"wrong": -1}, "the wrong token -1 is not a token id"),
        ([0, 1], [0, 2], {"ablation": "noise"}, "unknown ablation 'noise'"),
        ([0, 1], [0, 99], {}, "99"),
    ],
)
def test_bad_typed_prompts_are_clear(trained, clean, corrupted, options, message) -> None:
    model, _ = trained
    with pytest.raises(InputError, match=message):
        typed_setup(model, clean, corrupted, **options)


def test_sweep_settings_are_checked(trained) -> None:
    model, task = trained
    setup = task_setup(model, task, n_prompts=2)
    with pytest.raises(InputError, match="positions must be 'each' or 'all', got 'some'"):
        sweep_site(model, setup, "z", positions="some")  # type: ignore[arg-type]
