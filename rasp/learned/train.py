"""Training a Transformer Program as the authors do (their `run.py` at the RASP scripts'
setting): Adam, cross-entropy averaged over each sequence's scored tokens, the Gumbel-softmax
temperature annealed geometrically from `tau_start` to `tau_end`, epoch by epoch and smoothly
step by step within each epoch (the last epoch at `tau_end`); the result is the argmax model.

Same seed, same run: the initial weights, the shuffling and the Gumbel noise come from
generators seeded by `seed` (never the process-wide ones). A compiled step (`TrainStep`)
follows the uncompiled one up to float rounding, so a seed trained compiled and uncompiled
gives two runs, each repeatable. With an output directory, a resume
point is written after every epoch (one safetensors file replaced atomically: weights, Adam
state, generators, history), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from rasp.learned import tasks
from rasp.learned.model import ProgramModel, ProgramShape, Sampler
from workbench.errors import CheckpointError, InputError
from workbench.files import write_file
from workbench.resume import model_weights, read_resume, restore_optimizer, write_resume
from workbench.training import DeferredInterrupt

RESUME_FILE = "resume.safetensors"
WEIGHTS_FILE = "program.safetensors"
META_FILE = "program.json"  # written last: its presence marks a finished run
META_FORMAT = "workbench-learned-program/1"
RESUME_FORMAT = "workbench-learned-program-resume/2"  # /2: noise per token id


@dataclass(frozen=True, kw_only=True)
class LearnSettings:
    """A training run; the defaults are the paper's (Table 1 and the authors' scripts)."""

    task: str
    seed: int = 0
    n_layers: int = 3
    cat_heads: int = 4
    num_heads: int = 4
    cat_mlps: int = 2
    num_mlps: int = 2
    d_mlp: int = 64
    epochs: int = 250
    batch_size: int = 512
    lr: float = 5e-2
    tau_start: float = 3.0
    tau_end: float = 0.01
    size: int = 20_000  # distinct examples drawn, before the 81/9/10 split

    def __post_init__(self) -> None:
        tasks.task_spec(self.task)
        for name in ("n_layers", "d_mlp", "epochs", "batch_size", "size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cat_heads", "num_heads", "cat_mlps", "num_mlps"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "tau_start", "tau_end"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InputError(f"{name} must be a finite number > 0, got {getattr(self, name)}")

    def shape(self, data: tasks.Dataset) -> ProgramShape:
        return ProgramShape(
            d_vocab=len(data.words),
            d_out=len(data.tags),
            n_ctx=data.n_ctx,
            d_var=data.spec.max_length,  # the scripts' --d_var "${MAX_LENGTH}"
            n_layers=self.n_layers,
            cat_heads=self.cat_heads,
            num_heads=self.num_heads,
            cat_mlps=self.cat_mlps,
            num_mlps=self.num_mlps,
            d_mlp=self.d_mlp,
            autoregressive=data.spec.autoregressive,
        )

    def temperatures(self, steps_per_epoch: int) -> np.ndarray:
        """The temperature of every step, as the authors' `run_training` sets it."""
        per_epoch = np.geomspace(self.tau_start, self.tau_end, self.epochs)
        steps = [
            np.geomspace(per_epoch[e], per_epoch[e + 1], steps_per_epoch)
            if e + 1 < self.epochs
            else np.full(steps_per_epoch, per_epoch[e])
            for e in range(self.epochs)
        ]
        return np.concatenate(steps)


@dataclass
class LearnResult:
    model: ProgramModel
    data: tasks.Dataset
    metrics: dict[str, Any]
    compiled: bool = False  # whether the training step ran compiled (at its end)


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy averaged over each sequence's scored tokens (target != 0), then the batch."""
    losses = -logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    scored = targets != 0
    return (losses.masked_fill(~scored, 0).sum(-1) / scored.sum(-1)).mean()


COMPILE_BACKEND = "inductor"  # torch.compile's backend for `TrainStep` (tests swap it)
COMPILE_FROM_STEPS = 2_000  # `learn` compiles CPU runs this long (compiling takes ~1 min)


class TrainStep:
    """One optimiser step on a batch at a temperature: the sequence loss of a Gumbel-softmax
    forward pass, backward, Adam. The step's noise is drawn from `noise` in one call (on the
    CPU the same draws as one call per choice). `compiled`: batches of `batch_size` run
    through torch.compile (a smaller last batch runs as it is). Where it cannot compile (no
    C++ compiler, no Triton, a Python torch.compile does not support, or torch's limit of
    recompiles in this process reached by many model shapes), a warning says so and the run
    goes on uncompiled, with the same draws; `compiled` is then None."""

    def __init__(
        self,
        model: ProgramModel,
        opt: torch.optim.Optimizer,
        noise: torch.Generator,
        *,
        batch_size: int,
        compiled: bool = False,
    ) -> None:
        self.model, self.opt, self.noise, self.batch_size = model, opt, noise, batch_size
        self.sizes: dict[tuple[int, ...], int] = {}  # batch shape -> draws per step
        self.compiled: Callable[..., Tensor] | None = None
        if compiled and not torch._dynamo.eval_frame.is_dynamo_supported():
            self._uncompiled(f"Python {sys.version.split()[0]} is not supported")
        elif compiled:
            self.compiled = torch.compile(self.loss, backend=COMPILE_BACKEND, dynamic=False)

    def loss(self, x: Tensor, y: Tensor, uniform: Tensor, tau: Tensor) -> Tensor:
        return sequence_loss(self.model(x, Sampler(tau, uniform, hard=False)), y)

    def __call__(self, x: Tensor, y: Tensor, tau: float) -> float:
        if (size := self.sizes.get(tuple(x.shape))) is None:
            size = self.sizes[tuple(x.shape)] = self.model.noise_size(x)
        uniform = torch.rand(size, generator=self.noise, device=x.device)
        temperature = torch.tensor(tau, dtype=torch.float32, device=x.device)
        self.opt.zero_grad(set_to_none=True)
        loss = None
        if self.compiled is not None and len(x) == self.batch_size:
            from torch._dynamo.exc import FailOnRecompileLimitHit, ShortenTraceback

            try:  # the backward pass compiles at its first call: inside too
                with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                    loss = self.compiled(x, y, uniform, temperature)
                loss.backward()
            except (ShortenTraceback, FailOnRecompileLimitHit) as exc:
                cause = getattr(exc, "inner_exception", exc)
                self._uncompiled(f"{type(cause).__name__}: {str(cause).strip()[:300]}")
                self.opt.zero_grad(set_to_none=True)
                loss = None
        if loss is None:
            loss = self.loss(x, y, uniform, temperature)
            loss.backward()
        self.opt.step()
        return float(loss.detach())

    def _uncompiled(self, reason: str) -> None:
        warnings.warn(
            f"torch.compile could not compile the training step ({reason}); training goes on "
            "uncompiled, slower (compiled=False or --no-compile skips the attempt)",
            stacklevel=3,
        )
        self.compiled = None


def train_epoch(
    step: TrainStep, x: Tensor, y: Tensor, batches: tuple[Tensor, ...], temps: np.ndarray
) -> list[float]:
    """One pass over `batches` (index tensors), step i at temperature temps[i]; the losses."""
    step.model.train()
    return [step(x[batch], y[batch], float(tau)) for batch, tau in zip(batches, temps, strict=True)]


@torch.no_grad()
def accuracy(model: ProgramModel, split: tasks.Split, device: str) -> float:
    """The argmax model's accuracy over the split's scored tokens."""
    tokens = torch.as_tensor(split.inputs, device=device)
    predictions = model.predict(tokens).cpu().numpy()
    scored = split.targets != 0
    return float((predictions == split.targets)[scored].mean())


def learn(
    settings: LearnSettings,
    out_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
    data: tasks.Dataset | None = None,
    force: bool = False,
    compiled: bool | None = None,
) -> LearnResult:
    """Train a Transformer Program; returns the argmax model and its accuracy per split.
    `out_dir` may hold an interrupted run of the same settings (it resumes); `force` starts
    over, deleting the finished program or resume point a run left there (nothing else).
    `compiled`: the training step through torch.compile (`TrainStep`); by default on the CPU
    for runs of at least `COMPILE_FROM_STEPS` steps, where it pays for its compile time."""
    data = data or tasks.load(settings.task, settings.size, settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = ProgramModel(settings.shape(data)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    shuffle = torch.Generator().manual_seed(settings.seed)
    noise = torch.Generator(device=device).manual_seed(settings.seed + 1)
    x_train = torch.as_tensor(data.train.inputs, device=device)
    y_train = torch.as_tensor(data.train.targets, device=device)
    per_epoch = math.ceil(len(x_train) / settings.batch_size)
    temps = settings.temperatures(per_epoch)
    if compiled is None:
        long_run = settings.epochs * per_epoch >= COMPILE_FROM_STEPS
        compiled = torch.device(device).type == "cpu" and long_run
    step = TrainStep(model, opt, noise, batch_size=settings.batch_size, compiled=compiled)
    run = {"settings": dataclasses.asdict(settings)}
    state = _State(model, opt, shuffle, noise)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InputError(f"output directory {out} is a file; pass a directory path")
        if force:
            for name in (META_FILE, WEIGHTS_FILE, RESUME_FILE):  # the finished marker first
                (out / name).unlink(missing_ok=True)
        if (out / META_FILE).is_file():
            raise CheckpointError(
                f"{out} already holds a finished program; pass a new directory, or --force "
                "(force=True) to train it again"
            )
        _resume(out, run, state)
    from tqdm.auto import tqdm

    bar = tqdm(
        range(state.epoch, settings.epochs),
        initial=state.epoch,
        total=settings.epochs,
        disable=not progress,
        desc=f"program for {settings.task}",
    )
    with DeferredInterrupt() as interrupt:
        for epoch in bar:
            order = torch.randperm(len(x_train), generator=shuffle).to(device)
            batches = order.split(settings.batch_size)
            epoch_temps = temps[epoch * per_epoch : (epoch + 1) * per_epoch]
            losses = train_epoch(step, x_train, y_train, batches, epoch_temps)
            state.epoch = epoch + 1
            record = {"epoch": state.epoch, "loss": float(np.mean(losses))}
            record["val_accuracy"] = accuracy(model, data.val, device)
            state.history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record['val_accuracy']:.3f}")
            if out is not None and state.epoch < settings.epochs:
                _save_resume(out, run, state)
            if interrupt.requested and state.epoch < settings.epochs:
                raise KeyboardInterrupt(f"training interrupted after epoch {state.epoch}")
    model.eval()
    metrics: dict[str, Any] = {
        f"{name}_accuracy": accuracy(model, data.split(name), device)
        for name in ("train", "val", "test")
    }
    metrics["history"] = state.history
    result = LearnResult(model, data, metrics, compiled=step.compiled is not None)
    if out is not None:
        save(out, settings, result)
        (out / RESUME_FILE).unlink(missing_ok=True)
    return result


def save(out: Path, settings: LearnSettings, result: LearnResult) -> None:
    """The weights, then `program.json` (settings, architecture, vocabularies, metrics,
    whether the step ran compiled)."""
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    write_file(out / WEIGHTS_FILE, lambda path: save_file(weights, str(path)))
    meta = {
        "format": META_FORMAT,
        "settings": dataclasses.asdict(settings),
        "shape": dataclasses.asdict(result.model.shape),
        "words": list(result.data.words),
        "tags": list(result.data.tags),
        "metrics": result.metrics,
        "compiled": result.compiled,
    }
    write_file(out / META_FILE, lambda path: path.write_text(json.dumps(meta, indent=1)))


def load(out: str | Path) -> tuple[ProgramModel, dict[str, Any]]:
    """A finished run's argmax model and its `program.json`."""
    out = Path(out)
    if not (out / META_FILE).is_file():
        raise InputError(
            f"{out} holds no finished learned program ({META_FILE} is missing); train one "
            "with `workbench learn-program ... -o DIR`"
        )
    try:
        meta = json.loads((out / META_FILE).read_text())
        if meta.get("format") != META_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {META_FORMAT!r}")
        shape = meta["shape"]
        model = ProgramModel(
            ProgramShape(**{**shape, "masked_outputs": tuple(shape["masked_outputs"])})
        )
        model.load_state_dict(load_file(str(out / WEIGHTS_FILE)))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{out} is not a learned program this version reads: {exc}") from None
    return model.eval(), meta


@dataclass
class _State:
    model: ProgramModel
    opt: torch.optim.Optimizer
    shuffle: torch.Generator
    noise: torch.Generator
    epoch: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def _save_resume(out: Path, run: dict[str, Any], state: _State) -> None:
    out.mkdir(parents=True, exist_ok=True)
    generators = {"shuffle": state.shuffle.get_state(), "noise": state.noise.get_state()}
    header = {
        "format": RESUME_FORMAT,
        "epoch": str(state.epoch),
        "run": json.dumps(run, sort_keys=True),
        "history": json.dumps(state.history),
    }
    write_resume(out / RESUME_FILE, state.model.state_dict(), state.opt, generators, header)


def _resume(out: Path, run: dict[str, Any], state: _State) -> None:
    path = out / RESUME_FILE
    if not path.is_file():
        return
    problem = f"{path} is not a resume point of this version; delete it to start over"
    header, tensors = read_resume(path, RESUME_FORMAT, problem)
    try:
        epoch, saved = int(header["epoch"]), json.loads(header["run"])
        history = json.loads(header["history"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{problem} ({exc})") from None
    if saved != json.loads(json.dumps(run, sort_keys=True)):
        raise CheckpointError(
            f"{out} holds an interrupted run with other settings ({saved['settings']}); resume "
            "it with the same settings, or pass a new output directory"
        )
    device = next(state.model.parameters()).device
    state.model.load_state_dict({k: v.to(device) for k, v in model_weights(tensors).items()})
    restore_optimizer(state.opt, tensors)
    state.shuffle.set_state(tensors["shuffle"])
    state.noise.set_state(tensors["noise"])
    state.epoch, state.history = epoch, list(history)
