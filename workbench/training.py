"""Training a workbench model on a built-in task, with checkpoints that make runs resumable.

Same seed, same result: the model is initialised and the data drawn from generators seeded
by `seed`; an interrupted run restores the weights, the optimiser and the data generator from
`OUT/resume/` and continues as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from workbench import checkpoint
from workbench.api import build
from workbench.errors import CheckpointError
from workbench.model import Transformer
from workbench.presets import get_preset
from workbench.tasks import Batch, Task, make_task

RESUME = "resume"


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    steps: int
    seed: int = 0
    batch_size: int = 64  # <= 0: the whole training split every step (full batch)
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 10
    schedule: str = "constant"  # after warmup: "constant", or "cosine" down to 10% of lr
    eval_every: int = 100
    eval_size: int = 1024  # <= 0: the whole test split
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step `step` (0-based): linear warmup, then the schedule."""
        warm = min(1.0, (step + 1) / max(1, self.warmup))
        if self.schedule == "constant" or step < self.warmup:
            return self.lr * warm
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainResult:
    model: Transformer
    metrics: dict[str, Any]
    out_dir: Path | None


def train(
    preset: str,
    task: Task | str,
    settings: TrainSettings,
    out_dir: str | Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> TrainResult:
    """Train `preset` on `task`; write the model to `out_dir` (if given) and return it.

    Runs with deterministic algorithms (restored afterwards): the CPU backward of an embedding
    lookup otherwise accumulates in thread order, and two runs of one seed drift apart."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    try:
        return _train(preset, task, settings, out_dir, overrides, device, progress)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(
    preset: str,
    task: Task | str,
    settings: TrainSettings,
    out_dir: str | Path | None,
    overrides: dict[str, Any] | None,
    device: str,
    progress: bool,
) -> TrainResult:
    task = make_task(task) if isinstance(task, str) else task
    # the task sees the intended architecture before it is complete (e.g. pos='abacus'
    # without the digit ids the task is about to supply), so: a plain view, not a config
    intended = SimpleNamespace(**{**vars(get_preset(preset).config), **(overrides or {})})
    fixed = {**task.model_overrides(intended), **(overrides or {})}
    model = build(preset, seed=settings.seed, **fixed).to(device).train()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        betas=settings.betas,
    )
    gen = torch.Generator().manual_seed(settings.seed)
    eval_batch = task.sample(
        settings.eval_size, torch.Generator().manual_seed(settings.seed + 1), "test"
    )
    run = {
        "preset": preset,
        "task": task.spec(),
        "settings": _settings_json(settings),
        "overrides": overrides or {},
    }
    out = Path(out_dir) if out_dir is not None else None
    history: list[dict[str, float]] = []
    start = 0
    if out is not None:
        start, history = _resume(out, run, model, opt, gen)
    bar = tqdm(
        range(start, settings.steps),
        initial=start,
        total=settings.steps,
        disable=not progress,
        desc=f"{preset} on {task.name}",
    )
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = settings.lr_at(step)
        loss, _ = task_loss(model, task, task.sample(settings.batch_size, gen, "train"), device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % settings.eval_every == 0 or done == settings.steps:
            record = {
                "step": done,
                "loss": float(loss.detach()),
                **evaluate(model, task, eval_batch, device),
            }
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}")
        if out is not None and done % settings.checkpoint_every == 0 and done < settings.steps:
            _save_resume(out, run, model, opt, gen, done, history)
    model.eval()
    metrics = {**history[-1], "history": history} if history else {}
    if out is not None:
        meta = {
            **run,
            "vocab": task.vocab,
            "metrics": metrics,
            "seed": settings.seed,
            "versions": checkpoint.versions(),
        }
        checkpoint.save(model, out, meta)
        shutil.rmtree(out / RESUME, ignore_errors=True)
    return TrainResult(model, metrics, out)


def task_loss(model: Transformer, task: Task, batch: Batch, device: str) -> tuple[Tensor, Tensor]:
    """The task's loss on the batch, and the logits."""
    logits = model(batch.tokens.to(device), validate=False)
    return task.loss(logits, batch), logits


@torch.no_grad()
def evaluate(model: Transformer, task: Task, batch: Batch, device: str = "cpu") -> dict[str, float]:
    was_training = model.training
    model.eval()
    loss, logits = task_loss(model, task, batch, device)
    model.train(was_training)
    return {"eval_loss": float(loss), "accuracy": task.accuracy(logits.cpu(), batch)}


def _settings_json(settings: TrainSettings) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def _save_resume(
    out: Path,
    run: dict[str, Any],
    model: Transformer,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    step: int,
    history: list[dict[str, float]],
) -> None:
    state_dir = out / RESUME
    state_dir.mkdir(parents=True, exist_ok=True)
    weights = model.unique_state_dict().items()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in weights}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["generator"] = gen.get_state()
    tensors["model_generator"] = model.train_generator.get_state()
    tmp = state_dir / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(state_dir / "state.safetensors")
    info = {"run": run, "step": step, "history": history}
    (state_dir / "state.json.tmp").write_text(json.dumps(info))
    (state_dir / "state.json.tmp").replace(state_dir / "state.json")


def _resume(
    out: Path,
    run: dict[str, Any],
    model: Transformer,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> tuple[int, list[dict[str, float]]]:
    info_path, state_path = out / RESUME / "state.json", out / RESUME / "state.safetensors"
    if not (info_path.is_file() and state_path.is_file()):
        if (out / checkpoint.META).is_file():
            raise CheckpointError(
                f"{out} already holds a finished model; pass a new output directory"
            )
        return 0, []
    info = json.loads(info_path.read_text())
    if info["run"] != run:
        raise CheckpointError(
            f"{out} holds an interrupted run with other settings ({info['run']}); "
            "resume it with the same command, or pass a new output directory"
        )
    tensors = load_file(str(state_path))
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=False)  # tied copies load through their owner
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
    gen.set_state(tensors["generator"])
    model.train_generator.set_state(tensors["model_generator"])
    return int(info["step"]), list(info["history"])
