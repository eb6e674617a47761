"""The sequences the probe commands and the dashboard's probes page read: test sequences of
a checkpoint's own built-in task (or of a task named instead), drawn with a seed."""

from __future__ import annotations

import torch

from workbench.tasks.base import Batch, Task


def task_batch(task: Task, n_prompts: int, seed: int) -> Batch:
    """`n_prompts` test sequences of `task`, drawn by a generator seeded with `seed`."""
    return task.sample(n_prompts, torch.Generator().manual_seed(seed), "test")
