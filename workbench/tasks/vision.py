"""A synthetic image-classification task for the vision transformer, generated in code: a
bright bar on a noisy background; the class is its orientation (horizontal, vertical,
diagonal, anti-diagonal). Images are [channels, size, size] floats; the label is read from
the class token (position 0)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.errors import InputError
from workbench.options import Patches
from workbench.tasks.base import Batch, PromptPairs, Task, randint

ORIENTATIONS = ["horizontal", "vertical", "diagonal", "antidiagonal"]


class BarsTask(Task):
    name = "bars"
    description = "classify the orientation of a bar in a noisy image (vision transformer)"
    modality = "image"

    def __init__(self, image_size: int = 16, channels: int = 1, noise: float = 0.2) -> None:
        super().__init__(image_size=image_size, channels=channels, noise=noise)
        if image_size < 6:
            raise ValueError(f"image_size must be >= 6, got {image_size}")
        self.size, self.channels, self.noise = image_size, channels, noise

    @property
    def vocab(self) -> list[str]:
        return list(ORIENTATIONS)

    @property
    def seq_len(self) -> int:
        raise InputError("an image task has no sequence length: it depends on the patch size")

    def model_overrides(self, config: Any) -> dict[str, Any]:
        if not isinstance(config.input, Patches):
            raise InputError(
                "task 'bars' is an image task: train a vision preset (input='patches'), "
                "e.g. --preset vit-tiny-patch4"
            )
        return {
            "d_vocab": len(ORIENTATIONS),
            "input": (image := config.input.replace(image_size=self.size, channels=self.channels)),
            "n_ctx": image.n_patches + 1,
        }

    def draw(self, labels: Tensor, gen: torch.Generator) -> Tensor:
        """One image per label: a bar of random length and place, plus Gaussian noise."""
        n, s = len(labels), self.size
        images = torch.randn(n, self.channels, s, s, generator=gen) * self.noise
        length = randint(gen, s // 2, (n,)) + s // 2 - 1  # s/2 - 1 .. s - 2 pixels
        for i in range(n):
            size = int(length[i])
            r0, c0 = (int(v) for v in randint(gen, s - size + 1, (2,)))
            steps = torch.arange(size)
            rows, cols = {
                0: (torch.full_like(steps, r0), c0 + steps),
                1: (r0 + steps, torch.full_like(steps, c0)),
                2: (r0 + steps, c0 + steps),
                3: (r0 + steps, c0 + size - 1 - steps),
            }[int(labels[i])]
            images[i, :, rows, cols] += 1.0
        return images

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        labels = randint(gen, len(ORIENTATIONS), (n,))
        return Batch(self.draw(labels, gen), labels)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits[:, 0], batch.targets.to(logits.device))

    def accuracy(self, logits: Tensor, batch: Batch) -> float:
        return float((logits[:, 0].argmax(-1) == batch.targets.to(logits.device)).float().mean())

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        """The same bar drawn in two orientations (horizontal vs vertical, or the diagonals)
        on the same noise; the answer is read at the class token."""
        labels = randint(gen, len(ORIENTATIONS), (n,))
        other = labels ^ 1  # 0 <-> 1, 2 <-> 3
        state = gen.get_state()
        clean = self.draw(labels, gen)
        gen.set_state(state)  # identical noise, length and place
        corrupted = self.draw(other, gen)
        return PromptPairs(clean, corrupted, labels, other, read_at=0)

    def encode(self, text: str) -> list[int]:
        raise InputError("task 'bars' takes images, not text: use task.sample or task.draw")

    def example_prompt(self) -> str:
        raise InputError("task 'bars' takes images, not text prompts")
