"""Resume points of training runs: one safetensors file holding the weights (`model.*`), the
optimiser's state (`optim.*`), whatever else the run needs (generators' states) and, in its
header, the format, the position in the run and its settings. Written by one rename
(`write_file`: staging file, fsync, rename, fsync of the directory), so a kill at any moment
leaves either the previous resume point or this one, whole."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from workbench.errors import CheckpointError
from workbench.files import write_file


def write_resume(
    path: Path,
    weights: dict[str, Tensor],
    opt: torch.optim.Optimizer,
    extra: dict[str, Tensor],
    header: dict[str, str],
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in weights.items()}
    for idx, opt_state in opt.state_dict()["state"].items():
        for key, value in opt_state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors |= {k: v.cpu() for k, v in extra.items()}
    write_file(path, lambda staging: save_file(tensors, str(staging), header))


def read_resume(path: Path, fmt: str, problem: str) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The header and tensors of a resume point of format `fmt`; `CheckpointError` starting
    with `problem` (what it is not, and what to do) for anything else."""
    try:
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{problem} ({exc})") from None
    if header.get("format") != fmt:
        raise CheckpointError(f"{problem} (format {header.get('format')!r}, not {fmt!r})")
    return header, tensors


def model_weights(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
