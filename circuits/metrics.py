"""Patching metrics, evaluated on the device for many patch configurations at once.

A metric takes the logits of K configurations stacked as [K, batch, pos, d_vocab] and returns
one number per configuration [K], without moving anything to the host. The built-in metrics
read one position per prompt (`read_at`: an int, or a tensor [batch] for padded prompts) and
average over the batch. `per_config` wraps a TransformerLens-style metric (logits of one run ->
scalar tensor) into this form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from circuits.options import parse
from workbench.errors import InputError
from workbench.functional import log_softmax, softmax

StackedLogits = Float[Tensor, "config batch pos d_vocab"]


class Metric(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]: ...


@runtime_checkable
class OnePosition(Metric, Protocol):
    """A metric that may read one position per prompt (`read_at`): `narrowed()` is the metric
    reading position 0 of logits narrowed to it, or None when this instance reads several."""

    @property
    def read_at(self) -> int | Tensor: ...

    def narrowed(self) -> Metric | None: ...


@runtime_checkable
class FewColumns(OnePosition, Protocol):
    """A one-position metric that reads a few logits, not a distribution: `columns()` is the
    token ids and the narrowed metric reading logits of those columns only."""

    def columns(self) -> tuple[Tensor, Metric]: ...


@dataclass(frozen=True)
class Reading:
    """What of the logits a metric reads: one position per prompt (`at`; None: every
    position), the vocabulary columns (`columns`; None: all of them), and the metric on logits
    narrowed to those (`Transformer.finish`'s `keep` and `columns`)."""

    at: int | Tensor | None
    columns: Tensor | None
    metric: Metric


def read_positions(metric: Metric) -> Reading:
    """What `metric` reads: one position when it is a `OnePosition` metric whose `narrowed()`
    is not None, and a few columns of it when it is also a `FewColumns` metric."""
    if not isinstance(metric, OnePosition) or (one := metric.narrowed()) is None:
        return Reading(None, None, metric)  # it reads several positions
    if not isinstance(metric, FewColumns):
        return Reading(metric.read_at, None, one)
    ids, reads = metric.columns()
    return Reading(metric.read_at, ids, reads)


def _read(logits: StackedLogits, read_at: int | Tensor) -> Float[Tensor, "config batch d_vocab"]:
    if isinstance(read_at, int):
        return logits[:, :, read_at]
    rows = torch.arange(logits.shape[1], device=logits.device)
    return logits[:, rows, read_at.to(logits.device)]


def _pick(values: Float[Tensor, "config batch d_vocab"], ids: Tensor) -> Tensor:
    ids = ids.to(values.device)
    return values.gather(-1, ids.view(1, -1, 1).expand(values.shape[0], -1, 1))[..., 0]


@dataclass(frozen=True)
class LogitDiff:
    """Mean over prompts of logit[answer] - logit[wrong] at `read_at`."""

    answer: Int[Tensor, " batch"]
    wrong: Int[Tensor, " batch"]
    read_at: int | Int[Tensor, " batch"] = -1
    name: str = "logit_diff"

    def narrowed(self) -> Metric:
        return replace(self, read_at=0)

    def columns(self) -> tuple[Int[Tensor, " column"], Metric]:
        """The answer and wrong tokens' ids, and this metric on logits of those alone."""
        ids, where = torch.unique(torch.cat([self.answer, self.wrong]), return_inverse=True)
        n = len(self.answer)
        return ids, replace(self, answer=where[:n], wrong=where[n:], read_at=0)

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        last = _read(logits, self.read_at)
        return (_pick(last, self.answer) - _pick(last, self.wrong)).mean(-1)


@dataclass(frozen=True)
class AnswerProb:
    """Mean over prompts of the probability of `answer` at `read_at`."""

    answer: Int[Tensor, " batch"]
    read_at: int | Int[Tensor, " batch"] = -1
    name: str = "prob"

    def narrowed(self) -> Metric:
        return replace(self, read_at=0)

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        return _pick(softmax(_read(logits, self.read_at)), self.answer).mean(-1)


@dataclass(frozen=True)
class AnswerLoss:
    """Mean over prompts of the cross-entropy -log p(answer) at `read_at`."""

    answer: Int[Tensor, " batch"]
    read_at: int | Int[Tensor, " batch"] = -1
    name: str = "loss"

    def narrowed(self) -> Metric:
        return replace(self, read_at=0)

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        return -_pick(log_softmax(_read(logits, self.read_at)), self.answer).mean(-1)


@dataclass(frozen=True)
class KLToClean:
    """Mean over prompts of KL(clean || patched) of the next-token distribution at `read_at`."""

    clean_logits: Float[Tensor, "batch pos d_vocab"]
    read_at: int | Int[Tensor, " batch"] = -1
    name: str = "kl"

    def narrowed(self) -> Metric:
        clean = _read(self.clean_logits[None], self.read_at)[0][:, None]  # [batch, 1, d_vocab]
        return replace(self, clean_logits=clean, read_at=0)

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        clean = log_softmax(_read(self.clean_logits[None].to(logits.device), self.read_at))
        patched = log_softmax(_read(logits, self.read_at))
        kl = F.kl_div(patched, clean.expand_as(patched), log_target=True, reduction="none")
        return kl.sum(-1).mean(-1)


@dataclass(frozen=True)
class OutputDistance:
    """How far each configuration's output is from a reference run's (the full model's), mean
    over prompts and the positions from `start` on: KL(reference || patched) of the output
    distributions (`kind="kl"`), or the mean squared difference of the logits (`"mse"`, for
    numerical outputs such as compiled RASP programs'). 0 for the reference itself: the
    distance ACDC keeps small."""

    reference: Float[Tensor, "batch pos d_vocab"]
    kind: str = "kl"
    start: int = 0
    valid: Tensor | None = None  # [batch, pos]: the positions to count (padded batches)

    def __post_init__(self) -> None:
        if self.kind not in ("kl", "mse"):
            raise InputError(f"OutputDistance kind must be 'kl' or 'mse', got {self.kind!r}")

    @property
    def name(self) -> str:
        return self.kind

    @property
    def read_at(self) -> int:
        return self.start

    def narrowed(self) -> Metric | None:
        """Reading the last position alone (start -1, no padding): the distance at it."""
        if self.start != -1 or self.valid is not None:
            return None
        return replace(self, reference=self.reference[:, -1:], start=0)

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        reference = self.reference[None, :, self.start :].to(logits.device)
        patched = logits[:, :, self.start :]
        if self.kind == "mse":
            per_position = (patched - reference).square().mean(-1)
        else:
            ref, out = log_softmax(reference), log_softmax(patched)
            kl = F.kl_div(out, ref.expand_as(out), log_target=True, reduction="none")
            per_position = kl.sum(-1)  # [config, batch, pos]
        if self.valid is None:
            return per_position.mean(dim=(1, 2))
        weights = self.valid[None, :, self.start :].to(per_position)
        return (per_position * weights).sum(dim=(1, 2)) / weights.sum()


@dataclass(frozen=True)
class PerConfig:
    """A metric of one run's logits [batch, pos, d_vocab] -> scalar, applied per configuration."""

    fn: Callable[[Tensor], Tensor]
    name: str = "custom"

    def __call__(self, logits: StackedLogits) -> Float[Tensor, " config"]:
        return torch.stack([torch.as_tensor(self.fn(run)).reshape(()) for run in logits])


def per_config(fn: Callable[[Tensor], Tensor], name: str = "custom") -> PerConfig:
    return PerConfig(fn, name)


class TaskMetric(StrEnum):
    """The built-in metrics a prompt pair's answers make (`task_metric`)."""

    LOGIT_DIFF = "logit_diff"
    PROB = "prob"
    LOSS = "loss"
    KL = "kl"

    @classmethod
    def parse(cls, value: object) -> TaskMetric:
        return parse(cls, value, "unknown metric {value}; choose one of {choices}")


METRICS = tuple(TaskMetric)


def task_metric(
    name: TaskMetric | str,
    *,
    answer: Tensor,
    wrong: Tensor,
    clean_logits: Tensor,
    read_at: int | Tensor = -1,
) -> Metric:
    """A built-in metric by name, for prompt pairs with these answers."""
    match TaskMetric.parse(name):
        case TaskMetric.LOGIT_DIFF:
            return LogitDiff(answer, wrong, read_at)
        case TaskMetric.PROB:
            return AnswerProb(answer, read_at)
        case TaskMetric.LOSS:
            return AnswerLoss(answer, read_at)
        case TaskMetric.KL:
            return KLToClean(clean_logits, read_at)
