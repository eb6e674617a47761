"""Patching on prompt pairs: clean/corrupted pairs drawn from a built-in task, or one pair typed
by hand, with the answer tokens the metric reads. What `workbench patch` and the dashboard's
patching page run, callable from notebooks as well:

    setup = task_setup(model, task, n_prompts=16)  # or typed_setup(model, clean, corrupted)
    result = sweep_site(model, setup, "resid_pre")  # [layer, pos]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuits.ablation import Ablation, Replacement
from circuits.engine import DEFAULT_BUDGET, Progress
from circuits.metrics import Metric, TaskMetric, task_metric
from circuits.nodes import Each, node_sweep, patch_nodes
from circuits.result import PatchResult
from workbench.errors import InputError
from workbench.model import Transformer
from workbench.tasks import Task
from workbench.tasks.base import PromptPairs


@dataclass(frozen=True)
class PatchSetup:
    """What a sweep runs: the prompt pairs, the prompts it patches (`target`: the corrupted
    ones for 'patch', which takes activations of the clean ones; the clean ones for an
    ablation), what replaces an activation, the metric, and the positions a run has."""

    pairs: PromptPairs
    target: Tensor
    replacement: Replacement
    metric: Metric
    n_pos: int


def task_setup(
    model: Transformer,
    task: Task,
    *,
    ablation: Ablation | str = Ablation.PATCH,
    metric: TaskMetric | str = TaskMetric.LOGIT_DIFF,
    n_prompts: int = 16,
    seed: int = 0,
) -> PatchSetup:
    """`n_prompts` pairs of `task` (seeded). Patching ('patch') runs the corrupted prompts
    with activations of the clean ones (TransformerLens's convention); the ablations run the
    clean prompts and draw their reference set (mean, resample) from fresh clean prompts of
    the task."""
    ablation, metric = Ablation.parse(ablation), TaskMetric.parse(metric)
    if n_prompts < 1:
        raise InputError(f"n_prompts must be at least 1, got {n_prompts}")
    check_task_fits(model, task)
    gen = torch.Generator().manual_seed(seed)
    pairs = task.pairs(n_prompts, gen)
    chosen, n_pos = _metric(model, pairs, metric)
    if ablation is Ablation.PATCH:
        target, replacement = pairs.corrupted, Replacement.of(ablation, source=pairs.clean)
    else:
        reference = task.pairs(n_prompts, gen).clean
        target, replacement = pairs.clean, Replacement.of(ablation, reference=reference, seed=seed)
    return PatchSetup(pairs, target, replacement, chosen, n_pos)


def typed_setup(
    model: Transformer,
    clean: list[int],
    corrupted: list[int],
    *,
    answer: int | None = None,
    wrong: int | None = None,
    ablation: Ablation | str = Ablation.PATCH,
    metric: TaskMetric | str = TaskMetric.LOGIT_DIFF,
) -> PatchSetup:
    """One pair of typed prompts (token ids, the same length). The metric reads the last
    position; `answer` defaults to the clean prompt's top prediction there, `wrong` to the
    corrupted prompt's. 'mean' and 'resample' need a task's reference prompts: refused."""
    ablation, metric = Ablation.parse(ablation), TaskMetric.parse(metric)
    if ablation in (Ablation.MEAN, Ablation.RESAMPLE):
        raise InputError(
            f"ablation {ablation.value!r} averages or draws activations over a task's prompts; one "
            "typed pair has none: choose patch or zero, or patch the task's prompt pairs"
        )
    pairs = typed_pairs(model, clean, corrupted, answer=answer, wrong=wrong)
    if metric is TaskMetric.LOGIT_DIFF and int(pairs.answer[0]) == int(pairs.wrong[0]):
        raise InputError(
            f"the answer and the wrong token are both token {int(pairs.answer[0])}: the logit "
            "difference would be 0 for every patch; name a different answer or wrong token"
        )
    chosen, n_pos = _metric(model, pairs, metric)
    if ablation is Ablation.PATCH:
        target, replacement = pairs.corrupted, Replacement.of(ablation, source=pairs.clean)
    else:
        target, replacement = pairs.clean, Replacement.of(ablation)
    return PatchSetup(pairs, target, replacement, chosen, n_pos)


def typed_pairs(
    model: Transformer,
    clean: list[int],
    corrupted: list[int],
    *,
    answer: int | None = None,
    wrong: int | None = None,
) -> PromptPairs:
    """One clean/corrupted pair of token ids; the answer and wrong tokens given, or the top
    predictions of the clean and the corrupted prompt at their last position."""
    if not clean or not corrupted:
        raise InputError("type a clean and a corrupted prompt: one of them is empty")
    if len(clean) != len(corrupted):
        raise InputError(
            f"the clean prompt has {len(clean)} tokens and the corrupted one {len(corrupted)}: "
            "a patch moves each activation to the same position, so type prompts of the same "
            "length"
        )
    tokens = torch.tensor([clean, corrupted])
    n = model.config.vocab_out
    for what, token in (("answer", answer), ("wrong token", wrong)):
        if token is not None and not 0 <= token < n:
            raise InputError(f"the {what} {token} is not a token id of this model: 0..{n - 1}")
    if answer is None or wrong is None:
        with torch.inference_mode():
            top = model(tokens.to(model.cfg.device))[:, -1].argmax(-1).tolist()
        answer = top[0] if answer is None else answer
        wrong = top[1] if wrong is None else wrong
    return PromptPairs(tokens[:1], tokens[1:], torch.tensor([answer]), torch.tensor([wrong]))


def sweep_site(
    model: Transformer,
    setup: PatchSetup,
    site: str,
    *,
    positions: Each = "each",
    heads: Each = "each",
    memory_budget: int = DEFAULT_BUDGET,
    on_progress: Progress | None = None,
) -> PatchResult:
    """Sweep `site` over every layer (x position, x head) of the setup's prompts.
    `on_progress(done, total)`: patches done after each batched pass."""
    for name, value in (("positions", positions), ("heads", heads)):
        if value not in ("each", "all"):
            raise InputError(f"{name} must be 'each' or 'all', got {value!r}")
    sweep = node_sweep(model, site, n_pos=setup.n_pos, positions=positions, heads=heads)
    return patch_nodes(
        model,
        setup.target,
        sweep,
        setup.replacement,
        setup.metric,
        memory_budget=memory_budget,
        on_progress=on_progress,
    )


def patch_task(
    model: Transformer,
    task: Task,
    site: str,
    *,
    positions: Each = "each",
    heads: Each = "each",
    ablation: Ablation | str = Ablation.PATCH,
    metric: TaskMetric | str = TaskMetric.LOGIT_DIFF,
    n_prompts: int = 16,
    seed: int = 0,
    memory_budget: int = DEFAULT_BUDGET,
    on_progress: Progress | None = None,
) -> PatchResult:
    """Sweep `site` over every layer (x position, x head) on `n_prompts` prompt pairs of
    `task` (`task_setup`, then `sweep_site`)."""
    setup = task_setup(
        model, task, ablation=ablation, metric=metric, n_prompts=n_prompts, seed=seed
    )
    return sweep_site(
        model,
        setup,
        site,
        positions=positions,
        heads=heads,
        memory_budget=memory_budget,
        on_progress=on_progress,
    )


def _metric(model: Transformer, pairs: PromptPairs, metric: TaskMetric) -> tuple[Metric, int]:
    """The metric by name for these pairs (KL needs the clean run's logits), and the number
    of positions a run has."""
    with torch.inference_mode():
        clean_logits = model(pairs.clean.to(model.cfg.device))
    chosen = task_metric(
        metric,
        answer=pairs.answer,
        wrong=pairs.wrong,
        clean_logits=clean_logits,
        read_at=pairs.read_at,
    )
    return chosen, clean_logits.shape[1]


def check_task_fits(model: Transformer, task: Task) -> None:
    """Raise unless the task's prompts are tokens of the model's vocabulary."""
    if task.d_vocab != model.config.d_vocab:
        raise InputError(
            f"task {task.name!r} has {task.d_vocab} tokens but the model's vocabulary has "
            f"{model.config.d_vocab}: pick the task the model was trained on"
        )
