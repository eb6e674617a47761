"""What every built-in task provides: a vocabulary, a batch sampler with next-token targets,
an accuracy metric, and clean/corrupted prompt pairs for patching."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from workbench.errors import InputError

IGNORE = -100  # target value of positions that carry no loss


@dataclass(frozen=True)
class Batch:
    """Token sequences and, per position, the id the model should predict next (or IGNORE);
    for a vision task images and their labels, for a forecast task the lookback window and
    the horizon that follows it."""

    tokens: (
        Int[Tensor, "batch pos"]
        | Float[Tensor, "batch channel height width"]
        | Float[Tensor, "batch lookback variate"]
    )
    targets: (
        Int[Tensor, "batch pos"] | Int[Tensor, " batch"] | Float[Tensor, "batch horizon variate"]
    )


@dataclass(frozen=True)
class PromptPairs:
    """Clean and corrupted prompts of equal shape; the metric reads the last position.

    `answer` is the correct next token on the clean prompt, `wrong` the one the corrupted
    prompt points to, so `logits[answer] - logits[wrong]` is the usual logit difference.
    `positions` names task-specific positions (e.g. IOI's IO and S tokens)."""

    clean: Tensor  # token ids [batch, pos], or images for vision tasks
    corrupted: Tensor
    answer: Int[Tensor, " batch"]
    wrong: Int[Tensor, " batch"]
    positions: dict[str, Int[Tensor, " batch"]] = field(default_factory=dict)
    read_at: int = -1  # the position whose logits answer: the last token, or ViT's class token

    def logit_diff(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, " batch"]:
        last = logits[:, self.read_at]
        idx = torch.arange(last.shape[0], device=last.device)
        return last[idx, self.answer] - last[idx, self.wrong]


class Task(abc.ABC):
    """A synthetic task with its own vocabulary. Subclasses set `name` and `description`."""

    name: str
    description: str
    modality = "text"  # "text": token ids in, "image": images in
    finite_split = False  # True: a fixed train/test split, so `sample(0, ...)` is all of it

    def __init__(self, **params: Any) -> None:
        self.params = params

    @property
    @abc.abstractmethod
    def vocab(self) -> list[str]: ...

    @property
    @abc.abstractmethod
    def seq_len(self) -> int: ...

    @abc.abstractmethod
    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch: ...

    @abc.abstractmethod
    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs: ...

    @property
    def d_vocab(self) -> int:
        return len(self.vocab)

    def model_overrides(self, config: Any) -> dict[str, Any]:
        """Config fields a model trained on this task must have (vocabulary, context)."""
        return {"d_vocab": self.d_vocab, "n_ctx": self.seq_len}

    def loss(self, logits: Float[Tensor, "batch pos d_vocab"], batch: Batch) -> Tensor:
        """Mean cross-entropy over the target positions."""
        targets = batch.targets.to(logits.device).flatten()
        return F.cross_entropy(logits.flatten(0, 1), targets, ignore_index=IGNORE)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    def encode(self, text: str) -> list[int]:
        """Whitespace-separated vocabulary words to ids; unknown words raise `InputError`."""
        return encode_words(text, self.vocab, f"the vocabulary of task {self.name!r}")

    def decode(self, ids: list[int] | Tensor) -> list[str]:
        return [self.vocab[int(i)] for i in ids]

    def accuracy(self, logits: Float[Tensor, "batch pos d_vocab"], batch: Batch) -> float:
        """Fraction of target positions where the argmax prediction is right."""
        mask = batch.targets != IGNORE
        right = (logits.argmax(-1) == batch.targets) & mask
        return float(right.sum() / mask.sum().clamp(min=1))

    def example_prompt(self) -> str:
        """A readable prompt for the dashboard: the first clean pair without its answer."""
        pair = self.pairs(1, torch.Generator().manual_seed(0))
        return " ".join(self.decode(pair.clean[0]))


def encode_words(text: str, vocab: list[str], owner: str) -> list[int]:
    """Whitespace-separated words of `vocab` to ids; an unknown word raises `InputError` that
    names `owner` (whose vocabulary it is) and lists the words to use."""
    index = {w: i for i, w in enumerate(vocab)}
    words = text.split()
    missing = [w for w in words if w not in index]
    if missing:
        shown = " ".join(vocab[:60]) + (" ..." if len(vocab) > 60 else "")
        raise InputError(f"{missing[0]!r} is not in {owner}; use words from: {shown}")
    return [index[w] for w in words]


def randint(gen: torch.Generator, high: int, size: tuple[int, ...]) -> Tensor:
    return torch.randint(0, high, size, generator=gen)
