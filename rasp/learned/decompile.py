"""A finished training run read back: its program, a listing of it, its Python source, its
RASP program (and that program compiled back to weights), the frozen workbench model, and the
check that all of them agree with the trained model on every token of the task's splits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rasp.learned import tasks, train
from rasp.learned.freeze import freeze
from rasp.learned.model import ProgramModel
from rasp.learned.program import Head, LearnedProgram, hard_predictions, to_program
from rasp.learned.python import to_python, value_kinds
from rasp.learned.to_rasp import RaspProgram, to_rasp

if TYPE_CHECKING:
    from rasp.compiler.compiler import CompiledProgram


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

    @property
    def title(self) -> str:
        return f"{self.task}, seed {self.meta['settings']['seed']}"

    def python(self) -> str:
        return to_python(self.program, self.words, self.tags, self.title)

    def rasp(self) -> RaspProgram:
        return to_rasp(self.program, self.words, self.tags)

    def compile(self, rasp: RaspProgram | None = None) -> CompiledProgram:
        """The RASP program compiled back to weights (validated against the interpreter)."""
        from rasp.compiler.compiler import compile_rasp

        rasp = rasp or self.rasp()
        return compile_rasp(rasp.output, set(rasp.vocab), rasp.max_len, causal=rasp.causal)

    def data(self) -> tasks.Dataset:
        settings = self.meta["settings"]
        return tasks.load(self.task, settings["size"], settings["seed"])

    def check(
        self,
        splits: tuple[str, ...] = ("train", "val", "test"),
        compiled: CompiledProgram | None = None,
        in_rasp: RaspProgram | None = None,
    ) -> dict[str, Any]:
        """Per split: the trained (argmax) model's accuracy and the number of real tokens on
        which the program, the frozen workbench model, the RASP program (in the interpreter)
        and, if given, the RASP program's compiled model disagree with it (0 when exact)."""
        import torch

        data = self.data()
        frozen = freeze(self.program, len(self.words), len(self.tags))
        program_in_rasp = in_rasp or self.rasp()
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
            words = [[self.words[i] for i in row if i] for row in split.inputs]
            expected = [
                [self.tags[i] for i in row[: len(w)]] for row, w in zip(model, words, strict=True)
            ]
            report[name] = {
                "accuracy": float((model == split.targets)[scored].mean()),
                "tokens": int(real.sum()),
                "program_disagrees": int((program != model)[real].sum()),
                "frozen_disagrees": int((frozen_out != model)[real].sum()),
                "rasp_disagrees": _differences(map(program_in_rasp.run, words), expected),
            }
            if compiled is not None:
                got = compiled.run_many(words)
                report[name]["compiled_disagrees"] = _differences(got, expected)
        return report

    def listing(self) -> str:
        return describe(self.program, self.words)


def _differences(got: Iterable[list[Any]], expected: list[list[Any]]) -> int:
    pairs = zip(got, expected, strict=True)
    return sum(a != b for out, want in pairs for a, b in zip(out, want, strict=True))


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
