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
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from workbench import checkpoint
from workbench.api import build
from workbench.errors import CheckpointError, InputError
from workbench.files import file_above
from workbench.model import Transformer
from workbench.options.base import Option, completed
from workbench.presets import get_preset
from workbench.resume import model_weights, read_resume, restore_optimizer, write_resume
from workbench.tasks import Batch, Task, make_task

RESUME = "resume"  # OUT/resume/state.safetensors: the latest resume point, one file
RESUME_FILE = "state.safetensors"
RESUME_FORMAT = "workbench-resume/2"


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
        checks = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 0, ">= 1, or 0 for the full batch"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            ("betas", all(0 <= b < 1 for b in self.betas), "two numbers in [0, 1)"),
            ("warmup", self.warmup >= 0, ">= 0"),
            ("eval_every", self.eval_every >= 1, ">= 1"),
            ("eval_size", self.eval_size >= 0, ">= 1, or 0 for the whole test split"),
            ("checkpoint_every", self.checkpoint_every >= 1, ">= 1"),
        ]
        for name, ok, valid in checks:
            if not ok:
                raise InputError(
                    f"training setting {name}={getattr(self, name)!r} is out of range; "
                    f"it must be {valid}"
                )
        if self.schedule not in ("constant", "cosine"):
            raise InputError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")

    def check_task(self, task: Task) -> None:
        """Full batches need a task with a fixed split: elsewhere a batch of 0 is empty."""
        for name in ("batch_size", "eval_size"):
            if getattr(self, name) == 0 and not task.finite_split:
                raise InputError(
                    f"{name}=0 means the whole split, but task {task.name!r} draws fresh "
                    f"examples and has no fixed split; pass {name} >= 1"
                )

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
    force: bool = False,
) -> TrainResult:
    """Train `preset` on `task`; write the model to `out_dir` (if given) and return it.
    `out_dir` may hold an interrupted run of the same command (it resumes); `force` starts
    over, deleting the finished model or resume point a previous run left there.

    Runs with deterministic algorithms (restored afterwards): the CPU backward of an embedding
    lookup otherwise accumulates in thread order, and two runs of one seed drift apart."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    try:
        return _train(preset, task, settings, out_dir, overrides, device, progress, force)
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
    force: bool = False,
) -> TrainResult:
    task = make_task(task) if isinstance(task, str) else task
    settings.check_task(task)
    out = _output_dir(out_dir, force)
    model = _build_for(preset, task, settings.seed, overrides).to(device).train()
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
    state = _State(run, model, opt, gen)
    if out is not None:
        state = _resume(out, state)
    from tqdm.auto import tqdm  # here: in Jupyter, importing it may warn (no ipywidgets)

    bar = tqdm(
        range(state.step, settings.steps),
        initial=state.step,
        total=settings.steps,
        disable=not progress,
        desc=f"{preset} on {task.name}",
    )
    with DeferredInterrupt() as interrupt:
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = settings.lr_at(step)
            batch = task.sample(settings.batch_size, gen, "train")
            loss, _ = task_loss(model, task, batch, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state.step = done = step + 1
            if done % settings.eval_every == 0 or done == settings.steps:
                record = {
                    "step": done,
                    "loss": float(loss.detach()),
                    **evaluate(model, task, eval_batch, device),
                }
                state.history.append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.3f}")
            if done == settings.steps:  # finished: a Ctrl-C now still gets the whole model
                break
            if out is not None and (done % settings.checkpoint_every == 0 or interrupt.requested):
                _save_resume(out, state)
            if interrupt.requested:
                raise TrainingInterrupted(out, done)
        model.eval()
        metrics = _finish(out, run, task, settings.seed, model, state)  # Ctrl-C waits for it
    return TrainResult(model, metrics, out)


def _finish(
    out: Path | None, run: dict[str, Any], task: Task, seed: int, model: Transformer, state: _State
) -> dict[str, Any]:
    """The run's metrics; with an output directory, the finished model is written there
    (workbench.json last) and the resume point removed."""
    metrics = {**state.history[-1], "history": state.history} if state.history else {}
    if out is not None:
        meta = {
            **run,
            "vocab": task.vocab,
            "metrics": metrics,
            "seed": seed,
            "versions": checkpoint.versions(),
        }
        out.mkdir(parents=True, exist_ok=True)
        # weights without workbench.json are an earlier final save that was cut off
        checkpoint.save_into(model, out, meta, replace_partial=True)
        shutil.rmtree(out / RESUME, ignore_errors=True)
    return metrics


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: raised after the step in flight finished and, when the run has
    an output directory, after a resume point of that step was saved."""

    def __init__(self, out: Path | None, step: int) -> None:
        where = (
            f"; a resume point at step {step} is in {out / RESUME}: run the same command to "
            "continue"
            if out is not None
            else " (no output directory, nothing saved)"
        )
        super().__init__(f"training interrupted after step {step}{where}")


class DeferredInterrupt:
    """Turns the first SIGINT (Ctrl-C) into a request the loop honours between steps, so a
    resume point never holds a half-applied optimiser step; a second Ctrl-C stops at once.
    Outside the main thread signals cannot be caught, and nothing changes."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _output_dir(out_dir: str | Path | None, force: bool) -> Path | None:
    """The output directory, refused before any training when it cannot be one; with `force`,
    emptied of a previous run (and only of a run: other files are never deleted)."""
    if out_dir is None:
        return None
    out = Path(out_dir)
    if (is_file := out if out.exists() and not out.is_dir() else file_above(out)) is not None:
        raise InputError(f"output directory {out}: {is_file} is a file; pass a directory path")
    if not out.is_dir():
        return out
    run = {checkpoint.WEIGHTS, checkpoint.META, RESUME}
    others = sorted(p.name for p in out.iterdir() if p.name not in run and p.name[0] != ".")
    if others:  # not a training run's directory: nothing in it is overwritten or deleted
        raise InputError(
            f"output directory {out} holds other files ({', '.join(others[:5])}); training "
            "writes only into a new directory or its own run's; pass a new output directory"
        )
    if force:
        for name in (checkpoint.META, checkpoint.WEIGHTS):  # the finished marker first
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / RESUME, ignore_errors=True)
    return out


def _build_for(preset: str, task: Task, seed: int, overrides: dict[str, Any] | None) -> Transformer:
    """The preset with what the task needs (vocabulary, context), the user's overrides on top;
    an override too small for the task's vocabulary or sequences is refused."""
    # the task sees the intended architecture before it is complete (e.g. pos='abacus'
    # without the digit ids the task is about to supply), so: a plain view, not a config
    intended = SimpleNamespace(**{**vars(get_preset(preset).config), **(overrides or {})})
    needed = task.model_overrides(intended)
    for name in ("d_vocab", "n_ctx"):
        given = (overrides or {}).get(name)
        if isinstance(given, int) and name in needed and given < needed[name]:
            raise InputError(
                f"{name}={given} is too small for task {task.name!r}, which needs "
                f"{name} >= {needed[name]}; drop the override or raise it"
            )
    given = {  # an option the user names by kind alone gets the task's parameters
        k: completed(v, needed[k]) if isinstance(needed.get(k), Option) else v
        for k, v in (overrides or {}).items()
    }
    return build(preset, seed=seed, **{**needed, **given})


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


@dataclass
class _State:
    """What a resume point holds: everything the rest of the run depends on."""

    run: dict[str, Any]
    model: Transformer
    opt: torch.optim.Optimizer
    gen: torch.Generator
    step: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def _save_resume(out: Path, state: _State) -> None:
    """One file (`workbench.resume`): the step, history and settings in its header beside the
    weights, optimiser and generators."""
    state_dir = out / RESUME
    state_dir.mkdir(parents=True, exist_ok=True)
    generators = {
        "generator": state.gen.get_state(),
        "model_generator": state.model.train_generator.get_state(),
    }
    header = {
        "format": RESUME_FORMAT,
        "step": str(state.step),
        "run": json.dumps(state.run, sort_keys=True),
        "history": json.dumps(state.history),
    }
    weights = state.model.unique_state_dict()
    write_resume(state_dir / RESUME_FILE, weights, state.opt, generators, header)


def _resume(out: Path, state: _State) -> _State:
    """Restore the resume point in `out`, checked against this run, or start at step 0."""
    state_path = out / RESUME / RESUME_FILE
    if (out / checkpoint.META).is_file():  # written last: the run finished
        raise CheckpointError(
            f"{out} already holds a finished model; pass a new output directory, or --force "
            "(force=True) to train it again from scratch"
        )
    if not state_path.is_file():
        return state
    problem = f"{state_path} is not a resume point of this version of the workbench"
    hint = f"delete {out / RESUME} to start the run over"
    header, tensors = read_resume(state_path, RESUME_FORMAT, f"{problem}; {hint}")
    try:
        step, run = int(header["step"]), json.loads(header["run"])
        history = json.loads(header["history"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{problem} ({exc}); {hint}") from None
    if run != json.loads(json.dumps(state.run, sort_keys=True)):
        raise CheckpointError(
            f"{out} holds an interrupted run with other settings ({run}); "
            "resume it with the same command, or pass a new output directory"
        )
    total = state.run["settings"]["steps"]
    if not 0 < step < total:
        raise CheckpointError(f"{problem} (step {step} of {total}); delete {out / RESUME}")
    # every name and shape, or an error
    state.model.load_weights(model_weights(tensors), str(state_path))
    restore_optimizer(state.opt, tensors)
    state.gen.set_state(tensors["generator"])
    state.model.train_generator.set_state(tensors["model_generator"])
    state.step, state.history = step, list(history)
    return state
