"""A finished training run read back: its program, a listing of it, its Python source, the
frozen workbench model, and the check that all of them agree with the trained model on every
token of the task's splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rasp.learned import tasks, train
from rasp.learned.freeze import freeze
from rasp.learned.model import ProgramModel
from rasp.learned.program import Head, LearnedProgram, hard_predictions, to_program
from rasp.learned.python import to_python, value_kinds


@dataclass(frozen=True)
class Decompiled:
    model: ProgramModel
    program: LearnedProgram
    meta: dict[str, Any]  # the run's program.json

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.meta["words"])

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.meta["tags"])

    @property
    def task(self) -> str:
        return self.meta["settings"]["task"]

    def python(self) -> str:
        settings = self.meta["settings"]
        return to_python(
            self.program, self.words, self.tags, f"{self.task}, seed {settings['seed']}"
        )

    def data(self) -> tasks.Dataset:
        settings = self.meta["settings"]
        return tasks.load(self.task, settings["size"], settings["seed"])

    def check(self, splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, Any]:
        """Per split: the trained (argmax) model's accuracy and the number of real tokens on
        which the program and the frozen workbench model disagree with it (0 when exact)."""
        import torch

        data = self.data()
        frozen = freeze(self.program, len(self.words), len(self.tags))
        report: dict[str, Any] = {}
        for name in splits:
            split = data.split(name)
            real, scored = split.inputs != 0, split.targets != 0
            model = hard_predictions(self.model, split.inputs)
            program = self.program.run(split.inputs)
            x = torch.as_tensor(split.inputs)
            with torch.no_grad():
                mask = torch.as_tensor(real.astype(np.int64))
                frozen_out = frozen(x, attention_mask=mask).argmax(-1).numpy()
            report[name] = {
                "accuracy": float((model == split.targets)[scored].mean()),
                "tokens": int(real.sum()),
                "program_disagrees": int((program != model)[real].sum()),
                "frozen_disagrees": int((frozen_out != model)[real].sum()),
            }
        return report

    def listing(self) -> str:
        return describe(self.program, self.words)


def decompile(run_dir: str | Path) -> Decompiled:
    """The program of a finished `workbench learn-program` run."""
    model, meta = train.load(run_dir)
    return Decompiled(model, to_program(model), meta)


def describe(program: LearnedProgram, words: tuple[str, ...]) -> str:
    """One line per variable: what it reads and how (predicates as query -> key values)."""
    kinds = value_kinds(program)

    def value(variable: str, index: int) -> str:
        if kinds[variable] == "token":
            return words[index] if index < len(words) else f"#{index}"
        return str(index)

    def predicate(head: Head) -> str:
        pairs = (
            f"{value(head.query, q)}->{value(head.key, k)}"
            for q, k in enumerate(head.predicate)
            if (kinds[head.query] != "token" or 0 < q < len(words)) and k >= 0
        )
        return "{" + ", ".join(pairs) + "}"

    lines = []
    for index, layer in enumerate(program.layers):
        lines.append(f"# layer {index}")
        for h in layer.cat_heads:
            lines.append(
                f"{h.name} = aggregate(select_closest({h.key}, {h.query}, {predicate(h)}), "
                f"{h.value})"
            )
        for h in layer.num_heads:
            lines.append(
                f"{h.name} = aggregate_sum(select({h.key}, {h.query}, {predicate(h)}), {h.value})"
            )
        for m in (*layer.cat_mlps, *layer.num_mlps):
            outputs = len(np.unique(m.table))
            lines.append(
                f"{m.name} = table({m.inputs[0]}, {m.inputs[1]})  # {m.table.shape[0]} x "
                f"{m.table.shape[1]} entries, {outputs} distinct outputs"
            )
    lines.append(f"output = readout({', '.join(program.readout)})")
    return "\n".join(lines)
