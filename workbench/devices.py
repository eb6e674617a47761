"""Device names as users type them (`auto`, `cpu`, `cuda`, `cuda:1`), checked against what
this machine has before any work starts, and the thread count of CPU work."""

from __future__ import annotations

import os

import torch

from workbench.errors import InputError


def resolve_device(name: str, *, here: bool = True) -> str:
    """`auto` becomes `cuda` when a GPU is usable, else `cpu`; any other name must be a device
    this machine has. `here=False` only checks the name (`auto` stays): the work runs on
    another machine (a Ray worker may have the GPU that this driver lacks)."""
    if name == "auto" and not here:
        return name
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(
            f"unknown device {name!r}; use cpu, cuda, cuda:N or auto (cuda when available)"
        ) from None
    if device.type == "cpu" or (device.type == "cuda" and not here):
        return name
    if device.type != "cuda":
        raise InputError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        raise InputError(
            f"device {name!r} asked for, but CUDA is not available here (torch "
            f"{torch.__version__}, {torch.cuda.device_count()} GPUs visible); use --device cpu, "
            "or install the torch build for your CUDA (README)"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(
            f"device {name!r} does not exist: this machine has "
            f"{torch.cuda.device_count()} GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return name


def default_threads() -> int:
    """Half the CPUs this process may use (at least 1, at most 8): torch's default takes every
    core, which on a shared or busy machine makes small models 10-100x slower."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every CPU
    cpus = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, min(8, cpus // 2))


def use_threads(n: int) -> int:
    """Set torch's intra-op threads (`n` >= 1, or 0 for `default_threads()`); returns the count.
    Results are reproducible at a fixed thread count."""
    if n < 0:
        raise InputError(f"--threads must be >= 1, or 0 for the default, got {n}")
    n = n or default_threads()
    torch.set_num_threads(n)
    return n
