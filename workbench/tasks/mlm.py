"""Masked language modelling on palindromes, for bidirectional encoders (BERT's objective,
Devlin et al. 2019). A sequence is CLS x reverse(x); about 15% of the symbols are replaced by
MASK and must be recovered. A masked symbol is determined by its mirror image, so the task is
solvable exactly when attention can look both ways."""

from __future__ import annotations

import torch

from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint

CLS, MASK = 0, 1


class MaskedPalindromeTask(Task):
    name = "mlm"
    description = "masked-LM on palindromes CLS x reverse(x): recover the MASKed symbols"

    def __init__(self, n_symbols: int = 20, half_len: int = 8, mask_rate: float = 0.15) -> None:
        super().__init__(n_symbols=n_symbols, half_len=half_len, mask_rate=mask_rate)
        if not 0 < mask_rate < 0.5:
            raise ValueError(f"mask_rate must be in (0, 0.5), got {mask_rate}")
        self.n_symbols, self.half_len, self.mask_rate = n_symbols, half_len, mask_rate

    @property
    def vocab(self) -> list[str]:
        return ["CLS", "MASK"] + [f"s{i}" for i in range(self.n_symbols)]

    @property
    def seq_len(self) -> int:
        return 2 * self.half_len + 1

    def palindromes(self, n: int, gen: torch.Generator) -> torch.Tensor:
        x = randint(gen, self.n_symbols, (n, self.half_len)) + 2
        return torch.cat([torch.full((n, 1), CLS), x, x.flip(1)], dim=1)

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        original = self.palindromes(n, gen)
        masked = torch.rand(original.shape, generator=gen) < self.mask_rate
        masked[:, 0] = False  # CLS stays
        mirror = masked.flip(1)[:, :-1]  # a symbol whose mirror is masked too is unknowable
        masked[:, 1:] &= ~(mirror & (torch.arange(1, self.seq_len) > self.half_len))
        tokens = torch.where(masked, MASK, original)
        targets = torch.where(masked, original, IGNORE)
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """The last symbol is masked; its mirror (position 1) differs between the prompts."""
        clean = self.palindromes(n, gen)
        answer = clean[:, -1].clone()
        corrupted = clean.clone()
        wrong = (answer - 2 + randint(gen, self.n_symbols - 1, (n,)) + 1) % self.n_symbols + 2
        corrupted[:, 1] = wrong
        clean[:, -1] = MASK
        corrupted[:, -1] = MASK
        return PromptPairs(clean, corrupted, answer, wrong)
