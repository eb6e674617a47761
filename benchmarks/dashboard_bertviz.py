"""BertViz's side of benchmarks/dashboard.py, run in BertViz's own environment: the time to build
BertViz's `model_view` and `head_view` HTML for the same attention, and the bytes of that HTML
(which carries every head's pattern as JSON).

    python3 -m venv /tmp/bvenv && /tmp/bvenv/bin/pip install torch==2.13.0 && \\
        /tmp/bvenv/bin/pip install bertviz safetensors
    /tmp/bvenv/bin/python benchmarks/dashboard_bertviz.py --attention DIR -o bertviz.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bertviz import head_view, model_view
from safetensors.torch import load_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attention", required=True, help="the folder benchmarks/dashboard.py wrote"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for path in sorted(Path(args.attention).glob("attention-*.safetensors")):
        patterns = load_file(path)["patterns"]  # [layer, head, query, key]
        tokens = json.loads(path.with_suffix(".json").read_text())
        attention = tuple(layer[None] for layer in patterns)  # BertViz: per layer [1, h, q, k]
        row: dict[str, object] = {"tokens": len(tokens)}
        for name, view in (("model_view", model_view), ("head_view", head_view)):
            start = time.perf_counter()
            html = view(attention, tokens, html_action="return").data
            row[f"{name}_s"] = time.perf_counter() - start
            row[f"{name}_bytes"] = len(html.encode())
            del html
        rows.append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
