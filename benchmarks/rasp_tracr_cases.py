"""Model size on tracr's own test cases (tracr/compiler/test_cases.py): tracr's compiled
models against ours, case by case (d_model, layers, MLP width).

Step 1, in tracr's environment, writes tracr's numbers to tests/rasp/tracr/widths.json:

    python3 -m venv /tmp/tracrenv && /tmp/tracrenv/bin/pip install tracr-pypi
    /tmp/tracrenv/bin/python benchmarks/rasp_tracr_cases.py tracr

Step 2, in ours, compiles the same cases (tests/rasp/tracr/tracr_cases.py: tracr's file with
its imports changed) and prints the table with tracr's numbers beside ours:

    .venv/bin/python benchmarks/rasp_tracr_cases.py ours

TEST_CASES compile bidirectionally and CAUSAL_TEST_CASES causally, as tracr's integration
test runs them. tests/rasp/test_tracr_cases.py holds every case to "no larger than tracr".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = ROOT / "tests" / "rasp" / "tracr" / "widths.json"


def tracr_numbers() -> None:
    from tracr.compiler import compiling, test_cases

    rows = []
    for causal, cases in ((False, test_cases.TEST_CASES), (True, test_cases.CAUSAL_TEST_CASES)):
        for case in cases:
            model = compiling.compile_rasp_to_model(
                case["program"],
                vocab=case["vocab"],
                max_seq_len=case["max_seq_len"],
                causal=causal,
                compiler_bos="BOS",
                compiler_pad="PAD",
            )
            config = model.model_config
            rows.append(
                {
                    "case": case["testcase_name"],
                    "causal": causal,
                    "d_model": int(model.params["token_embed"]["embeddings"].shape[1]),
                    "layers": int(config.num_layers),
                    "d_mlp": int(config.mlp_hidden_size),
                    "heads": int(config.num_heads),
                }
            )
    WIDTHS.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {WIDTHS}: {len(rows)} cases")


def our_table() -> None:
    sys.path.insert(0, str(ROOT))
    from rasp.compiler.compiling import compile_rasp_to_model
    from tests.rasp.tracr import tracr_cases

    theirs = {(r["case"], r["causal"]): r for r in json.loads(WIDTHS.read_text())}
    print("| case | d_model ours / tracr | layers ours / tracr | MLP width ours / tracr |")
    print("|---|---|---|---|")
    counts = {"narrower": 0, "equal": 0, "wider": 0}
    for causal, cases in (
        (False, tracr_cases.TEST_CASES),
        (True, tracr_cases.CAUSAL_TEST_CASES),
    ):
        for case in cases:
            model = compile_rasp_to_model(
                case["program"], case["vocab"], case["max_seq_len"], causal, "BOS"
            )
            c, r = model.model.config, theirs[(case["testcase_name"], causal)]
            name = case["testcase_name"] + (" (causal)" if causal else "")
            print(
                f"| {name} | {c.d_model} / {r['d_model']} | {c.n_layers} / {r['layers']} "
                f"| {c.d_mlp} / {r['d_mlp']} |"
            )
            key = (
                "narrower"
                if c.d_mlp < r["d_mlp"]
                else "equal"
                if c.d_mlp == r["d_mlp"]
                else "wider"
            )
            counts[key] += 1
    print(f"\nMLP width against tracr's: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["tracr", "ours"])
    args = parser.parse_args()
    tracr_numbers() if args.side == "tracr" else our_table()


if __name__ == "__main__":
    main()
