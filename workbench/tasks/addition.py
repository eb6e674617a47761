"""Multi-digit addition with numbers written least-significant digit first, as in McLeish et
al. 2024 ("Transformers Can Do Arithmetic with the Right Embeddings"):
`BOS 3 2 1 + 5 4 = 8 6 1 EOS` is 123 + 45 = 168. Operands have min_digits..max_digits digits;
the model writes the sum's digits and EOS after `=`; PAD fills the rest. Train on short numbers
and test on longer ones (a larger min_digits) to measure length generalisation."""

from __future__ import annotations

from typing import Any

import torch

from workbench.options import Abacus
from workbench.options.base import kind_of
from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint

PAD, BOS, PLUS, EQUALS, EOS = range(5)
DIGITS = tuple(range(5, 15))  # ids of "0".."9"


def reversed_digits(value: int) -> list[int]:
    return [DIGITS[int(d)] for d in reversed(str(value))]


class AdditionTask(Task):
    name = "addition"
    description = "multi-digit addition, digits least-significant first (pairs with pos='abacus')"

    def __init__(self, max_digits: int = 5, min_digits: int = 1) -> None:
        super().__init__(max_digits=max_digits, min_digits=min_digits)
        if not 1 <= min_digits <= max_digits:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits, got min_digits={min_digits}, "
                f"max_digits={max_digits}"
            )
        self.max_digits, self.min_digits = max_digits, min_digits

    @property
    def vocab(self) -> list[str]:
        return ["PAD", "BOS", "+", "=", "EOS"] + [str(d) for d in range(10)]

    @property
    def seq_len(self) -> int:
        return 3 * self.max_digits + 5  # BOS a + b = c (one digit longer) EOS

    def model_overrides(self, config: Any) -> dict[str, Any]:
        abacus = kind_of(config.pos) == Abacus.KIND  # the digit ids complete it
        extra = {"pos": Abacus(digits=DIGITS)} if abacus else {}
        return {"d_vocab": self.d_vocab, "n_ctx": self.seq_len, **extra}

    def operand(self, gen: torch.Generator) -> int:
        span = self.max_digits - self.min_digits + 1
        length = int(randint(gen, span, (1,))) + self.min_digits
        low = 0 if length == 1 else 10 ** (length - 1)
        return low + int(randint(gen, 10**length - low, (1,)))

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        tokens = torch.full((n, self.seq_len), PAD)
        targets = torch.full((n, self.seq_len), IGNORE)
        for row in range(n):
            a, b = self.operand(gen), self.operand(gen)
            prompt = [BOS, *reversed_digits(a), PLUS, *reversed_digits(b), EQUALS]
            answer = [*reversed_digits(a + b), EOS]
            seq = prompt + answer
            tokens[row, : len(seq)] = torch.tensor(seq)
            start = len(prompt) - 1  # the position of "=" predicts the first answer digit
            targets[row, start : start + len(answer)] = torch.tensor(answer)
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """max_digits-digit operands; the prompt ends at '='; the answer is the sum's units
        digit. The corrupted prompt changes b's units digit."""
        d = self.max_digits
        low = 10 ** (d - 1) if d > 1 else 0
        a = low + randint(gen, 10**d - low, (n,))
        b = low + randint(gen, 10**d - low, (n,))
        shift = randint(gen, 9, (n,)) + 1
        b_bad = b - b % 10 + (b % 10 + shift) % 10

        def prompts(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            rows = [
                [BOS, *reversed_digits(int(p)), PLUS, *reversed_digits(int(q)), EQUALS]
                for p, q in zip(x, y, strict=True)
            ]
            return torch.tensor(rows)

        answer = torch.tensor([DIGITS[int(v)] for v in (a + b) % 10])
        wrong = torch.tensor([DIGITS[int(v)] for v in (a + b_bad) % 10])
        return PromptPairs(prompts(a, b), prompts(a, b_bad), answer, wrong)
