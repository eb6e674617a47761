"""A small templated indirect-object-identification task (Wang et al. 2023, "Interpretability
in the Wild"). `When Mary and John went to the store , John gave a drink to` -> `Mary`.
The corrupted prompt is the paper's ABC variant: the second subject mention S2 becomes a third
name, so nothing singles out the indirect object."""

from __future__ import annotations

import torch

from workbench.tasks.base import IGNORE, Batch, PromptPairs, Task, randint

NAMES = ["Mary", "John", "Tom", "Anna", "Paul", "Sara", "Mike", "Lisa", "Dan", "Kate"]
# every template has the same length: {A} and {B} at 2 and 4, {S2} at 10, the answer after 14
TEMPLATES = [
    "When {A} and {B} went to the store , {S} gave a drink to",
    "When {A} and {B} went to the park , {S} handed a ball to",
    "After {A} and {B} arrived at the house , {S} showed a book to",
    "While {A} and {B} were at the school , {S} passed a note to",
]
IO_SLOTS, S2_POS = (2, 4), 10


class IOITask(Task):
    name = "ioi"
    description = "indirect object identification on fixed-length templates (ABBA and BABA)"

    def __init__(self, n_names: int = len(NAMES)) -> None:
        super().__init__(n_names=n_names)
        if not 3 <= n_names <= len(NAMES):
            raise ValueError(f"n_names must be in 3..{len(NAMES)}, got {n_names}")
        self.names = NAMES[:n_names]
        words = sorted({w for t in TEMPLATES for w in t.split() if not w.startswith("{")})
        self._vocab = ["BOS", *self.names, *words]
        self._index = {w: i for i, w in enumerate(self._vocab)}

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @property
    def seq_len(self) -> int:
        return len(TEMPLATES[0].split()) + 1

    def _draw(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        k = len(self.names)
        perm = torch.rand(n, k, generator=gen).argsort(1)[:, :3] + 1  # three distinct name ids
        return {
            "io": perm[:, 0],
            "s": perm[:, 1],
            "c": perm[:, 2],
            "template": randint(gen, len(TEMPLATES), (n,)),
            "io_first": randint(gen, 2, (n,)).bool(),
        }

    def _render(self, d: dict[str, torch.Tensor], s2: torch.Tensor) -> torch.Tensor:
        rows = []
        for i in range(len(s2)):
            a, b = (d["io"][i], d["s"][i]) if d["io_first"][i] else (d["s"][i], d["io"][i])
            slots = {"{A}": int(a), "{B}": int(b), "{S}": int(s2[i])}
            words = TEMPLATES[int(d["template"][i])].split()
            rows.append([0] + [slots.get(w, self._index.get(w, 0)) for w in words])
        return torch.tensor(rows)

    def _positions(self, d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        first, second = (torch.full_like(d["io"], p) for p in IO_SLOTS)
        io_pos = torch.where(d["io_first"], first, second)
        return {
            "io": io_pos,
            "s1": torch.where(d["io_first"], second, first),
            "s2": torch.full_like(io_pos, S2_POS),
            "end": torch.full_like(io_pos, self.seq_len - 1),
        }

    def sample(self, n: int, gen: torch.Generator, split: str = "train") -> Batch:
        d = self._draw(n, gen)
        prompts = self._render(d, d["s"])
        tokens = torch.cat([prompts, d["io"][:, None]], dim=1)[:, :-1]
        targets = torch.full_like(tokens, IGNORE)
        targets[:, -1] = d["io"]
        return Batch(tokens, targets)

    def pairs(self, n: int, gen: torch.Generator) -> PromptPairs:
        d = self._draw(n, gen)
        clean, corrupted = self._render(d, d["s"]), self._render(d, d["c"])
        return PromptPairs(clean, corrupted, d["io"], d["s"], self._positions(d))
