"""Sequence tasks: induction (Olsson et al. 2022), and the sequence-to-sequence tasks copy,
reverse, sort and histogram (the latter two from Weiss et al. 2021, "Thinking Like
Transformers"). Layout of the seq2seq tasks: BOS x_1..x_L SEP y_1..y_L."""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint


class InductionTask(Task):
    """BOS r r r...: a sequence of distinct random tokens repeated with a random period k in
    min_period..max_period. The loss is on positions whose token already occurred, where the
    next token is determined by what followed it last time. The varying period rules out a
    positional shortcut (attending a fixed distance back): only an induction mechanism that
    matches content can predict it."""

    name = "induction"
    description = (
        "repeated random sequences (random period): predict the repeat from the first copy"
    )

    def __init__(self, n_symbols: int = 40, max_period: int = 12, min_period: int = 4) -> None:
        super().__init__(n_symbols=n_symbols, max_period=max_period, min_period=min_period)
        if not 2 <= min_period <= max_period <= n_symbols:
            raise ValueError(
                f"need 2 <= min_period <= max_period <= n_symbols, got {min_period}, "
                f"{max_period}, {n_symbols}"
            )
        self.n_symbols, self.max_period, self.min_period = n_symbols, max_period, min_period

    @property
    def vocab(self) -> list[str]:
        return ["BOS"] + [f"t{i}" for i in range(self.n_symbols)]

    @property
    def seq_len(self) -> int:
        return 2 * self.max_period + 1

    def distinct(self, n: int, gen: torch.Generator) -> Tensor:
        """[n, max_period] distinct token ids per row (ids 1..n_symbols)."""
        keys = torch.rand(n, self.n_symbols, generator=gen)
        return keys.argsort(dim=1)[:, : self.max_period] + 1

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        r = self.distinct(n, gen)
        period = randint(gen, self.max_period - self.min_period + 1, (n, 1)) + self.min_period
        pos = torch.arange(self.seq_len - 1)[None, :]  # position i - 1 of each non-BOS token
        body = r.gather(1, pos % period)
        tokens = torch.cat([torch.zeros(n, 1, dtype=torch.long), body], dim=1)
        targets = torch.full_like(tokens, IGNORE)
        # position i predicts token i + 1; its own token occurred before once i >= period + 1
        known = torch.arange(self.seq_len)[None, :] >= period + 1
        known[:, -1] = False
        targets[:, :-1] = torch.where(known[:, :-1], tokens[:, 1:], IGNORE)
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """Clean: BOS r r[:-1] (period max_period), answer r[-1]. Corrupted: the first copy
        replaced by other tokens, so the second copy repeats nothing."""
        r = self.distinct(n, gen)
        bos = torch.zeros(n, 1, dtype=torch.long)
        clean = torch.cat([bos, r, r[:, :-1]], dim=1)
        fresh = self.distinct(n, gen)
        corrupted = torch.cat([bos, fresh, r[:, :-1]], dim=1)
        answer, wrong = r[:, -1], fresh[:, -1]
        wrong = torch.where(wrong == answer, wrong % self.n_symbols + 1, wrong)
        return PromptPairs(clean, corrupted, answer, wrong)


class Seq2SeqTask(Task):
    """BOS x SEP f(x): the model reads x and writes f(x) one token per position."""

    unique = False  # inputs without repeated symbols

    def __init__(self, n_symbols: int = 20, length: int = 8) -> None:
        super().__init__(n_symbols=n_symbols, length=length)
        self.n_symbols, self.length = n_symbols, length
        if self.unique and n_symbols < length:
            raise ValueError(f"{self.name} needs n_symbols >= length, got {n_symbols} < {length}")

    @abc.abstractmethod
    def transform(self, x: Tensor) -> Tensor:
        """f applied to symbol indices [n, L], as output vocabulary ids [n, L]."""

    @property
    def output_vocab(self) -> list[str]:
        return []

    @property
    def vocab(self) -> list[str]:
        return ["BOS", "SEP"] + [f"s{i}" for i in range(self.n_symbols)] + self.output_vocab

    @property
    def seq_len(self) -> int:
        return 2 * self.length + 2

    def symbol_id(self, x: Tensor) -> Tensor:
        return x + 2

    def inputs(self, n: int, gen: torch.Generator) -> Tensor:
        if self.unique:
            keys = torch.rand(n, self.n_symbols, generator=gen)
            return keys.argsort(dim=1)[:, : self.length]
        return randint(gen, self.n_symbols, (n, self.length))

    def assemble(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        bos = torch.zeros(n, 1, dtype=torch.long)
        sep = torch.ones(n, 1, dtype=torch.long)
        return torch.cat([bos, self.symbol_id(x), sep, self.transform(x)], dim=1)

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        tokens = self.assemble(self.inputs(n, gen))
        targets = torch.full_like(tokens, IGNORE)
        sep = self.length + 1
        targets[:, sep:-1] = tokens[:, sep + 1 :]
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """Change one input symbol so that output j = L // 2 changes; prompts end before it."""
        j = self.length // 2
        cut = self.length + 2 + j
        x = self.inputs(n, gen)
        x_bad = x.clone()
        for row in range(n):
            x_bad[row] = self._corrupt(x[row], j, gen)
        clean, corrupted = self.assemble(x), self.assemble(x_bad)
        return PromptPairs(clean[:, :cut], corrupted[:, :cut], clean[:, cut], corrupted[:, cut])

    def _corrupt(self, x: Tensor, j: int, gen: torch.Generator) -> Tensor:
        target = self.transform(x[None])[0, j]
        for _ in range(1000):
            pos = int(randint(gen, self.length, (1,)))
            cand = x.clone()
            cand[pos] = int(randint(gen, self.n_symbols, (1,)))
            if self.unique and len(set(cand.tolist())) < self.length:
                continue
            if self.transform(cand[None])[0, j] != target:
                return cand
        raise RuntimeError(f"{self.name}: found no corruption that changes output {j}")


class CopyTask(Seq2SeqTask):
    name = "copy"
    description = "copy the input after SEP"

    def transform(self, x: Tensor) -> Tensor:
        return self.symbol_id(x)


class ReverseTask(Seq2SeqTask):
    name = "reverse"
    description = "write the input reversed after SEP"

    def transform(self, x: Tensor) -> Tensor:
        return self.symbol_id(x.flip(1))


class SortTask(Seq2SeqTask):
    name = "sort"
    description = "write the (distinct) input symbols in ascending order after SEP"
    unique = True

    def transform(self, x: Tensor) -> Tensor:
        return self.symbol_id(x.sort(1).values)


class HistogramTask(Seq2SeqTask):
    """For each input position, how often its symbol occurs in the input (Weiss et al. 2021)."""

    name = "histogram"
    description = "for each input token, write how many times it occurs"

    def __init__(self, n_symbols: int = 6, length: int = 8) -> None:
        super().__init__(n_symbols, length)

    @property
    def output_vocab(self) -> list[str]:
        return [f"c{i}" for i in range(1, self.length + 1)]

    def transform(self, x: Tensor) -> Tensor:
        counts = (x[:, :, None] == x[:, None, :]).sum(-1)  # [n, L], each >= 1
        return counts - 1 + 2 + self.n_symbols  # ids of c1..cL
