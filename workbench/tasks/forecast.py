"""Synthetic multivariate forecasting for the iTransformer: each variate is a sum of two
sinusoids (periods from a fixed set, random phases and amplitudes) plus noise, and half the
variates are delayed copies of another, so attention across variates pays off. The model reads
`lookback` steps and forecasts the next `horizon`; the score is R^2 on the forecast."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.errors import InputError
from workbench.options import Series
from workbench.tasks.base import Batch, PromptPairs, Task, randint

PERIODS = (4.0, 6.0, 8.0, 12.0, 16.0)


class ForecastTask(Task):
    name = "forecast"
    description = "multivariate time-series forecasting of noisy sinusoid mixtures (iTransformer)"
    modality = "series"

    def __init__(
        self, variates: int = 8, lookback: int = 32, horizon: int = 8, noise: float = 0.05
    ) -> None:
        super().__init__(variates=variates, lookback=lookback, horizon=horizon, noise=noise)
        if variates < 2:
            raise ValueError(f"variates must be >= 2, got {variates}")
        self.variates, self.lookback, self.horizon, self.noise = variates, lookback, horizon, noise

    @property
    def vocab(self) -> list[str]:
        return [f"t+{i + 1}" for i in range(self.horizon)]  # the output units: forecast steps

    @property
    def seq_len(self) -> int:
        return self.variates

    def model_overrides(self, config: Any) -> dict[str, Any]:
        if not isinstance(config.input, Series):
            raise InputError(
                "task 'forecast' is a series task: train a series preset (input='series'), "
                "e.g. --preset itransformer-tiny"
            )
        return {
            "d_vocab": self.horizon,
            "n_ctx": self.variates,
            "input": Series(lookback=self.lookback),
        }

    def series(self, n: int, gen: torch.Generator) -> Tensor:
        """[n, lookback + horizon, variates]."""
        steps = self.lookback + self.horizon
        t = torch.arange(steps, dtype=torch.float32)[None, :, None, None]
        periods = torch.tensor(PERIODS)[randint(gen, len(PERIODS), (n, 1, self.variates, 2))]
        phase = torch.rand(n, 1, self.variates, 2, generator=gen) * 2 * math.pi
        amp = torch.rand(n, 1, self.variates, 2, generator=gen) + 0.5
        x = (amp * torch.sin(2 * math.pi * t / periods + phase)).sum(-1)  # [n, steps, variates]
        half = self.variates // 2  # variate half + i repeats variate i, 3 steps later
        delayed = torch.cat([x[:, :3, :half].clone().zero_(), x[:, :-3, :half]], dim=1)
        x = torch.cat([x[:, :, :half], delayed, x[:, :, 2 * half :]], dim=2)
        return x + torch.randn(x.shape, generator=gen) * self.noise

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        x = self.series(n, gen)
        return Batch(x[:, : self.lookback], x[:, self.lookback :])

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean squared error of the forecasts [batch, variate, horizon]."""
        return F.mse_loss(logits.transpose(1, 2), batch.targets.to(logits.device))

    def accuracy(self, logits: Tensor, batch: Batch) -> float:
        """R^2 of the forecast: 1 - MSE / variance of the targets (1 is perfect, 0 is the mean)."""
        targets = batch.targets.to(logits.device)
        mse = F.mse_loss(logits.transpose(1, 2), targets)
        return float(1 - mse / targets.var())

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        raise InputError(
            "task 'forecast' predicts values, not tokens: it has no answer/wrong pairs; patch "
            "two sampled series with task.loss as the metric"
        )

    def encode(self, text: str) -> list[int]:
        raise InputError("task 'forecast' takes series, not text: use task.sample")

    def example_prompt(self) -> str:
        raise InputError("task 'forecast' takes series, not text prompts")
