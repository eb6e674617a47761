"""The result of a patching run: the metric after each patch configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class PatchResult:
    """The metric after each configuration, with the unpatched target's and the source's.

    `configs` describes each configuration (site, layer, position, head... or edges); `dims`
    and `shape` lay the scores out as a grid (e.g. [layer, pos])."""

    configs: tuple[dict[str, object], ...]
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    scores: Tensor  # [n configurations], on the CPU
    metric: str
    ablation: str
    target_baseline: float  # the metric of the unpatched target run
    source_baseline: float | None  # the metric of the source run (patching from a source)

    def grid(self) -> Tensor:
        return self.scores.view(self.shape)

    def rows(self) -> list[dict[str, object]]:
        scores = self.scores.tolist()
        return [{**c, self.metric: s} for c, s in zip(self.configs, scores, strict=True)]

    def to_json(self) -> str:
        return json.dumps(
            {
                "metric": self.metric,
                "ablation": self.ablation,
                "dims": list(self.dims),
                "shape": list(self.shape),
                "target_baseline": self.target_baseline,
                "source_baseline": self.source_baseline,
                "results": self.rows(),
            }
        )
