"""Built-in synthetic tasks: each has a vocabulary, a sampler, an accuracy metric and
clean/corrupted prompt pairs for patching. `make_task(name, **params)` builds one."""

from __future__ import annotations

from typing import Any

from workbench.errors import unknown
from workbench.tasks.addition import AdditionTask
from workbench.tasks.arithmetic import ModularAdditionTask
from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task
from workbench.tasks.dyck import DyckTask
from workbench.tasks.forecast import ForecastTask
from workbench.tasks.ioi import IOITask
from workbench.tasks.mlm import MaskedPalindromeTask
from workbench.tasks.sequence import CopyTask, HistogramTask, InductionTask, ReverseTask, SortTask
from workbench.tasks.vision import BarsTask

TASKS: dict[str, type[Task]] = {
    t.name: t
    for t in (
        InductionTask,
        CopyTask,
        ReverseTask,
        SortTask,
        HistogramTask,
        ModularAdditionTask,
        AdditionTask,
        DyckTask,
        IOITask,
        MaskedPalindromeTask,
        BarsTask,
        ForecastTask,
    )
}


def make_task(name: str, **params: Any) -> Task:
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name](**params)


def list_tasks() -> list[type[Task]]:
    return list(TASKS.values())


__all__ = ["IGNORE", "TASKS", "Batch", "PromptPairs", "Task", "list_tasks", "make_task"]
