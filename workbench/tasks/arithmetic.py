"""Modular addition a + b mod p (Power et al. 2022, "Grokking"; Nanda et al. 2023, "Progress
Measures for Grokking"). Prompts are `a b =`; the answer is predicted at `=`. The p*p pairs are
split once, by a fixed permutation, into train and test; accuracy is reported on test."""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint


class ModularAdditionTask(Task):
    name = "modadd"
    description = "a b = -> (a + b) mod p, trained on a fixed fraction of all pairs"
    finite_split = True

    def __init__(self, p: int = 113, train_fraction: float = 0.5, split_seed: int = 0) -> None:
        super().__init__(p=p, train_fraction=train_fraction, split_seed=split_seed)
        if not 0 < train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        self.p = p
        order = torch.randperm(p * p, generator=torch.Generator().manual_seed(split_seed))
        n_train = max(1, int(train_fraction * p * p))
        self.splits = {"train": order[:n_train], "test": order[n_train:], "all": order}

    @property
    def vocab(self) -> list[str]:
        return [str(i) for i in range(self.p)] + ["="]

    @property
    def seq_len(self) -> int:
        return 3

    def prompts(self, pair_ids: Tensor) -> tuple[Tensor, Tensor]:
        a, b = pair_ids // self.p, pair_ids % self.p
        eq = torch.full_like(a, self.p)
        return torch.stack([a, b, eq], dim=1), (a + b) % self.p

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        """`n` pairs drawn from `split` ('train', 'test' or 'all'); n <= 0 gives the whole split."""
        ids = self.splits[split if split in self.splits else "train"]
        if len(ids) == 0:
            ids = self.splits["train"]
        if n > 0:
            ids = ids[randint(gen, len(ids), (n,))]
        tokens, answers = self.prompts(ids)
        targets = torch.full_like(tokens, IGNORE)
        targets[:, -1] = answers
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """Clean `a b =` and corrupted `a b' =` with b' != b."""
        ids = randint(gen, self.p * self.p, (n,))
        clean, answer = self.prompts(ids)
        shift = randint(gen, self.p - 1, (n,)) + 1
        corrupted = clean.clone()
        corrupted[:, 1] = (clean[:, 1] + shift) % self.p
        return PromptPairs(clean, corrupted, answer, (corrupted[:, 0] + corrupted[:, 1]) % self.p)
