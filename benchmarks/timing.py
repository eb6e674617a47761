"""The timing loop the benchmarks share: the median wall time of `repeats` calls, after an
optional warm-up call, with the GPU synchronised after each call when one is in use."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def timed(fn: Callable[[], T], repeats: int, warmup: bool = False) -> tuple[float, T]:
    """(median seconds, the last result) of `repeats` calls of `fn` (after one untimed call
    with `warmup`)."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _synchronize() -> None:
    """Wait for queued GPU work, so that a call's time includes it (no-op without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
