"""The authors' 14 shipped Transformer Programs imported into our program form and run on
their task's test split (the seed of the run that made each: its examples are our validation
split's first ten, tests/rasp/learned/test_tasks.py). Reports per program the test accuracy
with the model's rule for a query's own position (ours) and with their decompiler's, and
checks that the imported program frozen into a workbench model gives the same outputs, and
that the program in the `rasp` language (`rasp.learned.to_rasp`, run by the interpreter) and
that RASP program compiled back to weights (`rasp.compiler`) do too, on every test token.

    python benchmarks/ltp_shipped.py PATH/TO/TransformerPrograms   # a clone, read as text

Their files are parsed, never run. Recorded in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from rasp.compiler.compiler import compile_rasp
from rasp.learned import tasks
from rasp.learned.freeze import freeze
from rasp.learned.shipped import parse, their_closest, to_program
from rasp.learned.to_rasp import to_rasp

SHAPE_FIELDS = ("n_layers", "cat_heads", "num_heads", "cat_mlps", "num_mlps")
SEEDS = json.loads(
    (Path(__file__).parents[1] / "tests/rasp/learned/shipped_seeds.json").read_text()
)


def main(repo: Path) -> None:
    torch.set_num_threads(1)
    print(
        "| program | task | seed | layers | test accuracy (model's rule) | (their decompiler's) "
        "| frozen = program | RASP = program | compiled RASP = program | compiled: layers, "
        "d_model |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, seed in SEEDS.items():
        task = name.split("/")[1]
        data = tasks.load(task, seed=seed)
        program = to_program(parse(repo / "programs" / name), data)
        if name.startswith("rasp/"):  # Table 1's programs: the shapes tasks.TABLE_1_SHAPES names
            first = program.layers[0]
            counts = (first.cat_heads, first.num_heads, first.cat_mlps, first.num_mlps)
            shape = dict(zip(SHAPE_FIELDS, [len(program.layers), *map(len, counts)], strict=True))
            assert shape == tasks.TABLE_1_SHAPES[task], (name, shape)
        x, y = data.test.inputs, data.test.targets
        scored = y != 0
        ours = program.run(x)
        theirs = program.run(x, their_closest)
        frozen = freeze(program, len(data.words), len(data.tags))
        xt = torch.as_tensor(x)
        with torch.no_grad():
            out = frozen(xt, attention_mask=(xt != 0).long()).argmax(-1).numpy()
        real = x != 0
        in_rasp = to_rasp(program, data.words, data.tags)
        words = [[data.words[i] for i in row if i] for row in x]
        want = [[data.tags[i] for i in row[: len(w)]] for row, w in zip(ours, words, strict=True)]
        compiled = compile_rasp(
            in_rasp.output, set(in_rasp.vocab), in_rasp.max_len, causal=in_rasp.causal
        )
        print(
            f"| {name.split('/')[0]}/{task} | {task} | {seed} | {len(program.layers)} | "
            f"{100 * (ours == y)[scored].mean():.2f} | {100 * (theirs == y)[scored].mean():.2f} | "
            f"{bool(np.array_equal(out[real], ours[real]))} | "
            f"{[in_rasp.run(w) for w in words] == want} | {compiled.run_many(words) == want} | "
            f"{compiled.model.cfg.n_layers}, {compiled.model.cfg.d_model} |",
            flush=True,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
