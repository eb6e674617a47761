"""Built-in synthetic tasks: each has a vocabulary, a sampler, an accuracy metric and
clean/corrupted prompt pairs for patching. `make_task(name, **params)` builds one."""

from __future__ import annotations

import inspect
import math
import typing
from typing import Any

from workbench.errors import InputError, close_matches, unknown
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
    """The task `name` with `params` (each checked: a known name, its type, its range)."""
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    cls = TASKS[name]
    for key, value in params.items():
        _check_param(cls, key, value)
    try:
        return cls(**params)
    except ValueError as exc:  # the task's own checks across parameters
        raise InputError(f"task {name!r}: {exc}") from None


def _check_param(cls: type[Task], key: str, value: Any) -> None:
    """Sizes are integers >= 1 (seeds >= 0), real parameters finite numbers >= 0."""
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    accepted = [
        f"{p.name}={p.default!r}" for p in signature.parameters.values() if p.name != "self"
    ]
    if key not in hints:
        raise InputError(
            f"task {cls.name!r} has no parameter {key!r}; closest: "
            f"{close_matches(key, [a.split('=')[0] for a in accepted])}. Its parameters "
            f"(defaults): {', '.join(accepted) or 'none'}"
        )
    kind, low = hints[key], 0 if key.endswith("seed") else 1
    if kind is int:
        ok, want = type(value) is int and value >= low, f"an integer >= {low}"
    else:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ok, want = number and math.isfinite(value) and value >= 0, "a finite number >= 0"
    if not ok:
        raise InputError(
            f"task {cls.name!r} parameter {key}={value!r} must be {want} "
            f"(--task-param {key}=VALUE, e.g. {key}={signature.parameters[key].default!r})"
        )


def list_tasks() -> list[type[Task]]:
    return list(TASKS.values())


__all__ = ["IGNORE", "TASKS", "Batch", "PromptPairs", "Task", "list_tasks", "make_task"]
