"""Balanced parentheses, Dyck-1 (Weiss et al. 2021; Bhattamishra et al. 2020, "On the
Ability and Limitations of Transformers to Recognize Formal Languages"). The prompt is
`BOS` + brackets + `?`; the answer at `?` is `yes` if the brackets are balanced."""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint

BOS, OPEN, CLOSE, QUERY, NO, YES = range(6)


def is_balanced(brackets: Tensor) -> Tensor:
    """[n, L] of OPEN/CLOSE ids -> [n] bool: depth never negative and ends at zero."""
    depth = torch.where(brackets == OPEN, 1, -1).cumsum(1)
    return (depth.min(1).values >= 0) & (depth[:, -1] == 0)


class DyckTask(Task):
    name = "dyck"
    description = "Dyck-1: answer yes/no whether a bracket string is balanced"

    def __init__(self, length: int = 12) -> None:
        super().__init__(length=length)
        if length % 2:
            raise ValueError(f"dyck length must be even, got {length}")
        self.length = length

    @property
    def vocab(self) -> list[str]:
        return ["BOS", "(", ")", "?", "no", "yes"]

    @property
    def seq_len(self) -> int:
        return self.length + 2

    def balanced(self, n: int, gen: torch.Generator) -> Tensor:
        """Uniform-ish balanced strings: a random walk that must close all it opens."""
        out = torch.empty(n, self.length, dtype=torch.long)
        depth = torch.zeros(n, dtype=torch.long)
        u = torch.rand(n, self.length, generator=gen)
        for i in range(self.length):
            left = self.length - i
            must_close = depth >= left
            must_open = depth == 0
            opens = must_open | (~must_close & (u[:, i] < 0.5))
            out[:, i] = torch.where(opens, OPEN, CLOSE)
            depth += torch.where(opens, 1, -1)
        return out

    def flip_one(self, brackets: Tensor, gen: torch.Generator) -> Tensor:
        """Flip one bracket per row: a near miss that is never balanced (parity changes)."""
        pos = randint(gen, self.length, (brackets.shape[0],))
        out = brackets.clone()
        rows = torch.arange(brackets.shape[0])
        out[rows, pos] = OPEN + CLOSE - out[rows, pos]
        return out

    def assemble(self, brackets: Tensor) -> tuple[Tensor, Tensor]:
        n = brackets.shape[0]
        tokens = torch.cat([torch.full((n, 1), BOS), brackets, torch.full((n, 1), QUERY)], dim=1)
        return tokens, torch.where(is_balanced(brackets), YES, NO)

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        good = self.balanced(n, gen)
        near = self.flip_one(self.balanced(n, gen), gen)
        rand = torch.where(randint(gen, 2, (n, self.length)) == 0, OPEN, CLOSE)
        kind = randint(gen, 4, (n, 1))  # half balanced, a quarter near misses, a quarter random
        brackets = torch.where(kind < 2, good, torch.where(kind == 2, near, rand))
        tokens, answer = self.assemble(brackets)
        targets = torch.full_like(tokens, IGNORE)
        targets[:, -1] = answer
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """Clean: balanced; corrupted: the same string with one bracket flipped."""
        good = self.balanced(n, gen)
        clean, answer = self.assemble(good)
        corrupted, wrong = self.assemble(self.flip_one(good, gen))
        return PromptPairs(clean, corrupted, answer, wrong)
