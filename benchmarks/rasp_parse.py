"""Parsing long textual RASP programs: time against the number of statements.

    .venv/bin/python benchmarks/rasp_parse.py --sizes 300,1000,3000 --repeats 5

Each program is generated: statement i reads statement i - 1 (and one further back), so the
program is as deep as it is long, and the statements cycle through map, aggregate of a
select, selector_width, zip, a conditional, arithmetic and a call of a def. Per
size, medians over --repeats runs after a warm-up (wall time, and CPU time, which a shared
machine disturbs less), one thread:
- "parse": `rasp.parser.parse` (lark's LALR parse plus building the expressions);
- "run": what `workbench rasp run` does after reading the file: parse, evaluate on a
  4-token input, and count the layers and heads the program needs;
- with --earley N, lark's Earley parser on the same grammar (the parser before LALR, tree
  only) for sizes up to N, once each: the comparison.
Prints a JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from lark import Lark

from rasp import rasp
from rasp.analysis import requirements
from rasp.parser import GRAMMAR, parse

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed

STATEMENTS = [
    "x{i} = map(lambda v: v + 1, x{j});",
    "x{i} = aggregate(select(indices, indices, ==), x{j});",
    "w{i} = selector_width(select(x{j}, x{k}, <=));",
    "x{i} = zip(lambda a, b: a - b, x{j}, x{k});",
    "x{i} = x{j} if indices >= 0 else 0;",
    "x{i} = x{j} * 2 - x{k} // 3;",
    "x{i} = step(x{j});",
]


def program(n: int) -> str:
    """A def, `x0 = indices;` and n - 1 statements (w statements are read by nobody)."""
    lines = ["def step(s) { t = s + 1; return t - 1; }", "x0 = indices;"]
    xs = [0]  # the x statements so far: j is the last, k one halfway back
    for i in range(1, n):
        statement = STATEMENTS[i % len(STATEMENTS)]
        lines.append(statement.format(i=i, j=xs[-1], k=xs[len(xs) // 2]))
        if statement.startswith("x"):
            xs.append(i)
    return "\n".join(lines) + "\n"


def cpu_seconds(fn, repeats: int) -> float:
    """The median CPU time of `repeats` calls: on a shared machine it moves less than wall
    time, which counts the time other processes hold the cores."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000,3000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--earley", type=int, default=0, help="also time Earley up to N")
    args = parser.parse_args()
    torch.set_num_threads(1)
    earley = Lark(GRAMMAR, parser="earley", propagate_positions=True, maybe_placeholders=False)
    for n in map(int, args.sizes.split(",")):
        source = program(n)

        def run(source=source):
            output = parse(source).output
            return rasp.evaluate(output, list("abcd")), requirements(output)

        parse_s, parsed = timed(lambda source=source: parse(source), args.repeats, warmup=True)
        run_s, (_, needs) = timed(run, args.repeats, warmup=True)
        row = {
            "statements": n,
            "parse_s": round(parse_s, 4),
            "parse_cpu_s": round(cpu_seconds(lambda s=source: parse(s), args.repeats), 4),
            "parse_ms_per_statement": round(1000 * parse_s / n, 4),
            "run_s": round(run_s, 4),
            "run_cpu_s": round(cpu_seconds(run, args.repeats), 4),
            "layers": needs.layers,
            "names": len(parsed.names),
        }
        if n <= args.earley:
            start = time.perf_counter()
            earley.parse(source)
            row["earley_tree_s"] = round(time.perf_counter() - start, 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
