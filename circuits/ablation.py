"""What a patched activation is replaced by: the same activation on a source run (the other
prompt of a clean/corrupted pair), zero, its mean over a reference set, or its value on a
reference prompt drawn at random for each target prompt (resample ablation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from circuits.options import parse
from workbench.errors import InputError
from workbench.model import Transformer


class Ablation(StrEnum):
    PATCH = "patch"  # from the source run
    ZERO = "zero"
    MEAN = "mean"  # over the reference prompts, per position
    RESAMPLE = "resample"  # a random reference prompt per target prompt

    @classmethod
    def parse(cls, value: object) -> Ablation:
        return parse(cls, value, "unknown ablation {value}; choose one of {choices}")


@dataclass(frozen=True)
class Replacement:
    """How to replace activations, and the prompts that supply them."""

    ablation: Ablation = Ablation.PATCH
    source: Tensor | None = None  # tokens [batch, pos]: PATCH
    reference: Tensor | None = None  # tokens [n, pos]: MEAN, RESAMPLE
    seed: int = 0  # RESAMPLE draws

    @classmethod
    def of(
        cls,
        ablation: str | Ablation,
        source: Tensor | None = None,
        reference: Tensor | None = None,
        seed: int = 0,
    ) -> Replacement:
        kind = Ablation.parse(ablation)
        if kind is Ablation.PATCH and source is None:
            raise InputError("ablation 'patch' needs source prompts (the clean run) to patch from")
        if kind in (Ablation.MEAN, Ablation.RESAMPLE) and reference is None:
            raise InputError(f"ablation {kind.value!r} needs reference prompts to average/draw")
        return cls(kind, source, reference, seed)

    def check(self, target: Tensor) -> None:
        """Raise unless the replacement prompts line up with the target prompts."""
        if self.source is not None and self.source.shape != target.shape:
            raise InputError(
                f"source prompts {list(self.source.shape)} and target prompts "
                f"{list(target.shape)} must have the same shape: a patch moves each activation "
                "to the same prompt and position"
            )
        if self.reference is not None and self.reference.shape[1:] != target.shape[1:]:
            raise InputError(
                f"reference prompts must have the target's length and layout "
                f"{list(target.shape[1:])}, got {list(self.reference.shape[1:])}"
            )
        if self.reference is not None and len(self.reference) == 0:
            raise InputError("the reference set is empty: pass at least one reference prompt")

    @torch.inference_mode()
    def values(
        self,
        model: Transformer,
        hooks: Iterable[str],
        batch: int,
        attention_mask: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """The replacement of each hook's activation, [batch or 1, ...] on the model's device,
        and the source run's logits when patching from a source. `attention_mask` is the
        source prompts' (they share the target's layout); reference prompts are unpadded."""
        hooks = sorted(set(hooks))
        if self.ablation is Ablation.ZERO:
            return {}, None  # filled in the hook as zeros of the activation's shape
        prompts = self.source if self.ablation is Ablation.PATCH else self.reference
        if prompts is None:  # made without `of`, which checks this
            raise InputError(
                f"ablation {self.ablation.value!r} needs its prompts: use Replacement.of"
            )
        mask = attention_mask if self.ablation is Ablation.PATCH else None
        logits, cache = model.run_with_cache(
            prompts.to(model.cfg.device), names_filter=hooks, attention_mask=mask
        )
        if self.ablation is Ablation.PATCH:
            return {h: cache[h] for h in hooks}, logits
        if self.ablation is Ablation.MEAN:
            return {h: cache[h].mean(0, keepdim=True) for h in hooks}, None
        gen = torch.Generator().manual_seed(self.seed)
        rows = torch.randint(0, len(prompts), (batch,), generator=gen).to(model.cfg.device)
        return {h: cache[h][rows] for h in hooks}, None
