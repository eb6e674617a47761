"""The dashboard's cost for long inputs: server time and bytes sent for the model view (all
heads' summaries, the first figure a prompt gets) plus one head, for 128, 512 and 1,024 tokens
on a MiniLM-sized model (6 layers x 12 heads, d_model 384; MiniLM's config with n_ctx 1,024,
random weights: the cost does not depend on the weights), through a real waitress server as the
page requests them, each repeat a prompt the server has not run (its patterns forgotten: the
model view's time includes the forward pass; the head view is then drawn from that run, as on
the page); against BertViz's `model_view`/`head_view` HTML on the same attention
(`dashboard_bertviz.py`, in BertViz's own environment).

    .venv/bin/python benchmarks/dashboard.py --threads 2 --attention /tmp/bench/attention
    /tmp/bvenv/bin/python benchmarks/dashboard_bertviz.py --attention /tmp/bench/attention \\
        -o /tmp/bench/bertviz.json
    .venv/bin/python benchmarks/dashboard.py --threads 2 --peers /tmp/bench/bertviz.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

import workbench
from app.main import create_app
from app.models import Recent
from app.run import attention_patterns

LENGTHS = (128, 512, 1024)


def minilm_sized(directory: Path) -> None:
    config = workbench.load("all-minilm-l6-v2").config.replace(n_ctx=1024)
    workbench.checkpoint.save(workbench.build(config, seed=0), directory)


def post(url: str, app, output: str, values: dict[str, object], trigger: str) -> bytes:
    """One callback request as the page sends it; the reply's bytes."""
    key = next(k for k in app.callback_map if k.startswith(f"..{output}"))
    outputs = [part.split(".") for part in key.strip(".").split("...")]

    def props(kind: str) -> list[dict]:
        found = app.callback_map[key][kind]
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in found]

    body = {
        "output": key,
        "outputs": [{"id": i, "property": p.split("@")[0]} for i, p in outputs],
        "inputs": props("inputs"),
        "state": props("state"),
        "changedPropIds": [trigger],
    }
    req = urllib.request.Request(
        f"{url}/_dash-update-component",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as reply:
        data = reply.read()
    if b'"children":""' not in data and b'"children": ""' not in data:
        raise RuntimeError(f"the {output} callback failed: {data[-300:]!r}")
    return data


def measure(url: str, app, n: int, repeats: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(n)
    prompt = " ".join(str(int(i)) for i in torch.randint(1000, 30000, (n,), generator=gen))
    page = {"run.n_clicks": 1, "prompt.value": prompt, "model.value": "minilm-sized"}
    overview = {**page, "metric.value": "induction"}
    click = {"points": [{"x": "H3", "y": "L2"}]}
    head = {**page, "overview.clickData": click, "head-mode.value": "head"}
    head["head-style.value"] = "matrix"
    row: dict[str, object] = {"tokens": n}
    times: dict[str, list[float]] = {"model_view": [], "head": []}
    sizes: dict[str, int] = {}
    post(url, app, "overview.figure", overview, "prompt.value")  # warm-up
    for _ in range(repeats):  # a new prompt each time: the page's first run is timed
        app.registry.recent = Recent()
        for name, output, values in (
            ("model_view", "overview.figure", overview),
            ("head", "head.figure", head),  # after the model view, as the page asks
        ):
            start = time.perf_counter()
            data = post(url, app, output, values, "prompt.value")
            times[name].append(time.perf_counter() - start)
            sizes[name] = len(data)
    for name in times:
        row[f"{name}_s"], row[f"{name}_bytes"] = statistics.median(times[name]), sizes[name]
    row["total_s"] = row["model_view_s"] + row["head_s"]  # type: ignore[operator]
    row["total_bytes"] = row["model_view_bytes"] + row["head_bytes"]  # type: ignore[operator]
    return row


def save_attention(app, n: int, folder: Path) -> None:
    """The same attention for BertViz: patterns [layer, head, query, key] and the labels."""
    gen = torch.Generator().manual_seed(n)
    prompt = " ".join(str(int(i)) for i in torch.randint(1000, 30000, (n,), generator=gen))
    patterns, prepared = attention_patterns(app.registry, "minilm-sized", prompt)
    save_file({"patterns": patterns.contiguous()}, str(folder / f"attention-{n:04d}.safetensors"))
    (folder / f"attention-{n:04d}.json").write_text(json.dumps(prepared.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attention", help="write the attention for dashboard_bertviz.py here")
    parser.add_argument("--peers", help="BertViz's results (dashboard_bertviz.py -o)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from waitress.server import create_server

    with tempfile.TemporaryDirectory() as tmp:
        minilm_sized(Path(tmp) / "minilm-sized")
        app = create_app([str(Path(tmp) / "minilm-sized")])
        srv = create_server(app.server, host="127.0.0.1", port=0, threads=8)
        threading.Thread(target=srv.run, daemon=True).start()
        url = f"http://127.0.0.1:{srv.effective_port}"
        app.registry.checkpoint("minilm-sized")  # loaded before timing
        rows = [measure(url, app, n, args.repeats) for n in LENGTHS]
        if args.attention:
            Path(args.attention).mkdir(parents=True, exist_ok=True)
            for n in LENGTHS:
                save_attention(app, n, Path(args.attention))
        srv.close()
    peers = {r["tokens"]: r for r in json.loads(Path(args.peers).read_text())} if args.peers else {}
    print(
        "| tokens | ours: model view + head (s) | ours (MB) | BertViz model_view (s) | BertViz (MB) | time ratio | size ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peer = peers.get(row["tokens"])
        ours_mb = row["total_bytes"] / 1e6
        line = f"| {row['tokens']} | {row['total_s']:.3f} | {ours_mb:.2f} |"
        if peer:
            line += (
                f" {peer['model_view_s']:.2f} | {peer['model_view_bytes'] / 1e6:.1f} |"
                f" {peer['model_view_s'] / row['total_s']:.0f}x |"
                f" {peer['model_view_bytes'] / row['total_bytes']:.0f}x |"
            )
        else:
            line += " | | | |"
        print(line)
    print(json.dumps({"ours": rows, "bertviz": list(peers.values()), "time": time.ctime()}))


if __name__ == "__main__":
    main()
