"""Patching speed: the batched engine (`circuits`) against TransformerLens's patching loop
and auto-circuit's edge patching.

    python benchmarks/patching.py --threads 2

(a) Node patching: every layer x position of resid_pre on a GPT-2-small-shaped model (random
    weights), 16 tokens, logit-difference metric. Peers, on the same weights and prompts:
    `transformer_lens.patching.get_act_patch_resid_pre` (one forward pass per patch) on the
    workbench model, and on a TransformerLens 4.x `TransformerBridge` around the Hugging Face
    GPT-2 the workbench model was converted from.
(b) Edge patching: a sample of single edges of the same model's graph, against one forward
    pass per edge with plain hooks (the tests' reference).
With `--peers FILE`, also the peers that need TransformerLens 2.x, timed in their own
environment by benchmarks/patching_peers.py: its `HookedTransformer` patching loop for (a),
auto-circuit's mask-based edge patching for (b) (`--write-edges` gives it the edge sample).

Every result is checked equal to its peer's before it is timed. Prints a JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from timing import timed

from circuits.ablation import Replacement
from circuits.edges import patch_edges
from circuits.graph import build_graph
from circuits.metrics import LogitDiff
from circuits.nodes import node_sweep, patch_nodes
from circuits.problem import Problem
from workbench.convert import from_hf


def prompts(args, seed: int):
    """Random clean and corrupted prompts and a logit difference between random answers (the
    generator is returned for further draws)."""
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randint(0, 50257, shape, generator=gen).to(args.device)

    clean, corrupted = draw(args.batch, args.seq), draw(args.batch, args.seq)
    return gen, clean, corrupted, LogitDiff(draw(args.batch), draw(args.batch))


def gpt2_pair(device: str):
    """A random GPT-2 small (Hugging Face, eager) and the workbench model converted from it."""
    import transformers as T

    torch.manual_seed(0)
    cfg = T.GPT2Config()
    cfg._attn_implementation = "eager"
    hf = T.GPT2LMHeadModel(cfg).eval()
    ours = from_hf(hf).to(device)
    return hf, ours


def node_case(args, hf, ours) -> list[dict]:
    from transformer_lens import patching

    device = args.device
    _, clean, corrupted, metric = prompts(args, seed=1)
    sweep = node_sweep(ours, "resid_pre", n_pos=args.seq)
    replacement = Replacement.of("patch", source=clean)
    budget = args.memory_budget

    def engine() -> torch.Tensor:
        result = patch_nodes(ours, corrupted, sweep, replacement, metric, memory_budget=budget)
        return result.grid()

    def lens_loop(model) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.inference_mode():
                _, cache = model.run_with_cache(clean)
                return patching.get_act_patch_resid_pre(
                    model, corrupted, cache, lambda logits: metric(logits[None])[0]
                )

        return run

    peers = {"transformer_lens.patching on the workbench model": lens_loop(ours)}
    if not args.skip_bridge and device == "cpu":
        from transformer_lens.model_bridge import TransformerBridge

        with tempfile.TemporaryDirectory() as tmp:
            hf.save_pretrained(tmp)
            bridge = TransformerBridge.boot_transformers(tmp, hf_model=hf, device=device)
        peers["transformer_lens.patching on a TransformerBridge (TL 4.x)"] = lens_loop(bridge)
    ours_s, ours_out = timed(engine, args.repeats, warmup=True)
    measured = {
        name: timed(peer, max(1, args.repeats // 2), warmup=True) for name, peer in peers.items()
    }
    case = "node: resid_pre, every layer x position"
    extra = {"patches": len(sweep.patches), "batch": args.batch, "seq": args.seq}
    return compared(case, ours_s, ours_out, {**measured, **peer_rows(args, "node")}, extra)


def peer_rows(args, case: str) -> dict[str, tuple[float, torch.Tensor]]:
    """The peers of `case` timed in their own environment (benchmarks/patching_peers.py)."""
    if not args.peers:
        return {}
    with open(args.peers) as f:
        rows = [row for row in json.load(f) if row["case"] == case]
    return {row["peer"]: (row["peer_s"], torch.tensor(row["scores"])) for row in rows}


def compared(case: str, ours_s: float, ours_out, measured: dict, extra: dict) -> list[dict]:
    """One row per peer, after checking the peer's scores equal ours."""
    rows = []
    for name, (peer_s, peer_out) in measured.items():
        err = (ours_out.cpu() - peer_out.detach().cpu()).abs().max().item()
        if err > 1e-3:
            raise SystemExit(f"{case}: results differ from {name} by {err:.2e}")
        rows.append(
            {
                "case": case,
                "peer": name,
                **extra,
                "max_abs_diff": float(f"{err:.1e}"),
                "ours_s": round(ours_s, 3),
                "peer_s": round(peer_s, 3),
                "speedup": round(peer_s / ours_s, 2),
            }
        )
    return rows


def edge_sample(args, ours):
    """The prompts, metric and single-edge configurations of case (b)."""
    gen, clean, corrupted, metric = prompts(args, seed=2)
    graph = build_graph(ours.config)
    picks = torch.randperm(len(graph.edges), generator=gen)[: args.edges].tolist()
    return clean, corrupted, metric, [[graph.edges[i]] for i in picks], len(graph.edges)


def edge_case(args, ours) -> list[dict]:
    clean, corrupted, metric, configs, n_edges = edge_sample(args, ours)
    replacement = Replacement.of("patch", source=clean)

    def engine() -> torch.Tensor:
        problem = Problem(ours, corrupted, replacement, metric, memory_budget=args.memory_budget)
        return patch_edges(problem, configs).scores

    def one_pass_per_edge() -> torch.Tensor:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' reference
        from tests.circuits.reference import naive_edge_patching

        return naive_edge_patching(ours, corrupted, configs, clean, metric)

    ours_s, ours_out = timed(engine, args.repeats, warmup=True)
    measured = {"one forward pass per edge, plain hooks": timed(one_pass_per_edge, 1, warmup=True)}
    case = f"edge: {len(configs)} single edges of {n_edges}"
    extra = {"batch": args.batch, "seq": args.seq}
    return compared(case, ours_s, ours_out, {**measured, **peer_rows(args, "edge")}, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="prompts")
    parser.add_argument("--seq", type=int, default=16, help="tokens per prompt")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--edges", type=int, default=300, help="single edges sampled for (b)")
    parser.add_argument("--memory-budget", type=int, default=2 << 30)
    parser.add_argument("--skip-bridge", action="store_true")
    parser.add_argument("--peers", help="JSON written by benchmarks/patching_peers.py")
    parser.add_argument("--write-edges", help="write (b)'s edge sample here for the peers; exit")
    parser.add_argument("--cases", default="node,edge")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf, ours = gpt2_pair(args.device)
    if args.write_edges:
        configs = edge_sample(args, ours)[3]
        with open(args.write_edges, "w") as f:
            json.dump({"edges": [config[0].name for config in configs]}, f)
        return
    info = {"device": args.device, "threads": args.threads, "torch": torch.__version__}
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    if "node" in args.cases:
        for row in node_case(args, hf, ours):
            print(json.dumps({**row, **info}), flush=True)
    if "edge" in args.cases:
        for row in edge_case(args, ours):
            print(json.dumps({**row, **info}), flush=True)


if __name__ == "__main__":
    main()
