"""tracr's side of benchmarks/rasp_compile.py, run in tracr's own environment (JAX on CPU):
compile time and model width per library program.

    python3 -m venv /tmp/tracrenv && /tmp/tracrenv/bin/pip install tracr-pypi
    /tmp/tracrenv/bin/python benchmarks/rasp_tracr.py -o tracr.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tracr.compiler import compiling, lib  # noqa: F401  (lib: the programs' namespace)
from tracr.rasp import rasp  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))
from rasp_programs import PROGRAMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    rows = []
    for name, (function, arguments, vocab, max_len) in PROGRAMS.items():
        times, width = [], None
        for _ in range(args.repeats + 1):  # the first run warms JAX up
            program = eval(f"lib.{function}({arguments})")
            start = time.perf_counter()
            model = compiling.compile_rasp_to_model(
                program, vocab=set(vocab), max_seq_len=max_len, compiler_bos="BOS"
            )
            times.append(time.perf_counter() - start)
            width = model.params["token_embed"]["embeddings"].shape[1]
        rows.append(
            {"program": name, "tracr_s": statistics.median(times[1:]), "tracr_d_model": width}
        )
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
