"""RASP compile time and model width: our compiler against tracr's, per library program.

    /tmp/tracrenv/bin/python benchmarks/rasp_tracr.py -o tracr.json   # tracr's environment
    .venv/bin/python benchmarks/rasp_compile.py --tracr tracr.json

Ours is timed twice: compiling (program to weights, the stages tracr also runs) and
compiling with the validation every `compile_rasp` call does by default (the model against
the interpreter on every input up to max_seq_len here; tracr does not validate). Medians
over --repeats runs after one warm-up, one thread. Prints a JSON line per program.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rasp import library as lib  # noqa: F401  (the programs' namespace)
from rasp import rasp  # noqa: F401
from rasp.compiler.compiler import compile_rasp

sys.path.insert(0, str(Path(__file__).parent))
from rasp_programs import PROGRAMS
from timing import timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tracr", help="JSON written by benchmarks/rasp_tracr.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tracr = {}
    if args.tracr:
        tracr = {row["program"]: row for row in json.loads(Path(args.tracr).read_text())}
    for name, (function, arguments, vocab, max_len) in PROGRAMS.items():
        program = eval(f"lib.{function}({arguments})")
        vocab_set = set(vocab)

        def bare(program=program, vocab_set=vocab_set, max_len=max_len):
            return compile_rasp(program, vocab_set, max_len, validation_budget=0)

        def validated(program=program, vocab_set=vocab_set, max_len=max_len):
            return compile_rasp(program, vocab_set, max_len)

        ours_s, compiled = timed(bare, args.repeats, warmup=True)
        validated_s, _ = timed(validated, args.repeats, warmup=True)
        row = {
            "program": name,
            "vocab": len(vocab),
            "max_seq_len": max_len,
            "ours_s": round(ours_s, 5),
            "ours_validated_s": round(validated_s, 5),
            "ours_d_model": compiled.model.config.d_model,
            "layers": compiled.model.config.n_layers,
        }
        if name in tracr:
            peer = tracr[name]
            row |= {
                "tracr_s": round(peer["tracr_s"], 5),
                "tracr_d_model": peer["tracr_d_model"],
                "speedup": round(peer["tracr_s"] / ours_s, 1),
                "speedup_validated": round(peer["tracr_s"] / validated_s, 2),
            }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
