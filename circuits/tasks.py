"""Patching on a built-in task: the task supplies clean/corrupted prompt pairs and the answer
tokens the metric reads. What `workbench patch` runs, callable from notebooks as well."""

from __future__ import annotations

import torch

from circuits.ablation import Ablation, Replacement
from circuits.engine import DEFAULT_BUDGET
from circuits.metrics import task_metric
from circuits.nodes import Each, node_sweep, patch_nodes
from circuits.result import PatchResult
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.tasks import Task


def patch_task(
    model: Transformer,
    task: Task,
    site: str,
    *,
    positions: Each = "each",
    heads: Each = "each",
    ablation: str = "patch",
    metric: str = "logit_diff",
    n_prompts: int = 16,
    seed: int = 0,
    memory_budget: int = DEFAULT_BUDGET,
) -> PatchResult:
    """Sweep `site` over every layer (x position, x head) on `n_prompts` prompt pairs of
    `task`. Patching ('patch') runs the corrupted prompts with activations of the clean
    ones (TransformerLens's convention); the ablations run the clean prompts and draw
    their reference set (mean, resample) from fresh clean prompts of the task."""
    if n_prompts < 1:
        raise InputError(f"n_prompts must be at least 1, got {n_prompts}")
    check_task_fits(model, task)
    gen = torch.Generator().manual_seed(seed)
    pairs = task.pairs(n_prompts, gen)
    device = model.cfg.device
    with torch.inference_mode():
        clean_logits = model(pairs.clean.to(device))
    chosen = task_metric(
        metric,
        answer=pairs.answer,
        wrong=pairs.wrong,
        clean_logits=clean_logits,
        read_at=pairs.read_at,
    )
    if ablation == Ablation.PATCH.value:
        target, replacement = pairs.corrupted, Replacement.of("patch", source=pairs.clean)
    else:
        reference = task.pairs(n_prompts, gen).clean
        target, replacement = pairs.clean, Replacement.of(ablation, reference=reference, seed=seed)
    n_pos = clean_logits.shape[1]
    sweep = node_sweep(model, site, n_pos=n_pos, positions=positions, heads=heads)
    return patch_nodes(model, target, sweep, replacement, chosen, memory_budget=memory_budget)


def check_task_fits(model: Transformer, task: Task) -> None:
    """Raise unless the task's prompts are tokens of the model's vocabulary."""
    if task.d_vocab != model.config.d_vocab:
        raise InputError(
            f"task {task.name!r} has {task.d_vocab} tokens but the model's vocabulary has "
            f"{model.config.d_vocab}: pick the task the model was trained on"
        )
