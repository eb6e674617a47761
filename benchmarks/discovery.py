"""Circuit-discovery speed: our ACDC against auto-circuit's on compiled RASP programs (the same
graph, the same edges, the same prompts and threshold), and the cost of EAP and EAP-IG in
forward-pass equivalents.

    .venv/bin/python benchmarks/discovery.py --write-models /tmp/disc          # 1. programs
    /tmp/acenv/bin/python benchmarks/discovery_peers.py --models /tmp/disc -o /tmp/acdc.json
    .venv/bin/python benchmarks/discovery.py --models /tmp/disc --peers /tmp/acdc.json

(a) ACDC: reverse and frac_prevs compiled with vocab {a, b, c} and max_seq_len 5, `--prompts`
    random inputs of length 5 (clean) and as many others (corrupted: removed edges carry
    their activations), KL over the output positions (MSE for the numerical frac_prevs), one
    threshold. And gelu-2l trained on the IOI task (400 steps, accuracy 1.0), `--prompts`
    IOI prompts and their ABC corruptions, KL at the answer position. auto-circuit runs `acdc_prune_scores` with that threshold alone, on a
    TransformerLens 2.x `HookedTransformer` loaded with the same weights; its graph is ours
    (factorized, q/k/v separate). Both circuits are printed; the orders in which the two
    visit edges of the same layer differ, so the circuits may too.
(b) EAP and EAP-IG (m = 5): time over the time of one forward pass on the same prompts
    (GPT-2-small shape, random weights, 8 x 16 tokens): forward-pass equivalents. With
    --peers, EAP against auto-circuit's (`mask_gradient_prune_scores`, mask 0: EAP exactly,
    as auto-circuit's tests show) on the same model and prompts, scores checked equal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timing import timed

from circuits.ablation import Replacement
from circuits.acdc import acdc
from circuits.eap import eap, eap_ig
from circuits.graph import build_graph
from circuits.metrics import LogitDiff, OutputDistance
from circuits.problem import Problem
from rasp import library, rasp
from rasp.compiler.compiler import compile_rasp

PROGRAMS = {
    "reverse": lambda: library.make_reverse(rasp.tokens),
    "frac_prevs": lambda: library.make_frac_prevs(rasp.tokens == "a"),
}
# each ACDC case: the output distance, and the first position it reads
CASES = {"reverse": ("kl", 1), "frac_prevs": ("mse", 1), "ioi": ("kl", -1)}


def write_models(out: Path, n_prompts: int) -> None:
    from workbench.tasks import make_task
    from workbench.training import TrainSettings, train

    gen = torch.Generator().manual_seed(0)
    for name, program in PROGRAMS.items():
        compiled = compile_rasp(program(), {"a", "b", "c"}, 5)
        compiled.save(out / name, force=True)  # --write-models rewrites its models
        vocab = len(compiled.vocab)
        clean = torch.randint(1, vocab + 1, (n_prompts, 6), generator=gen)
        corrupt = torch.randint(1, vocab + 1, (n_prompts, 6), generator=gen)
        clean[:, 0] = corrupt[:, 0] = 0  # BOS
        save_file({"clean": clean, "corrupt": corrupt}, str(out / name / "prompts.safetensors"))
    # a model trained on the IOI task (accuracy 1.0 from step 300), its ABC corruption
    train("gelu-2l", "ioi", TrainSettings(steps=400, lr=3e-3), out / "ioi", progress=False)
    pairs = make_task("ioi").pairs(n_prompts, gen)
    prompts = {"clean": pairs.clean, "corrupt": pairs.corrupted}
    save_file(prompts, str(out / "ioi" / "prompts.safetensors"))


def acdc_case(args) -> list[dict]:
    import workbench

    peers = {}
    if args.peers:
        peers = {row["program"]: row for row in json.loads(Path(args.peers).read_text())}
    rows = []
    for name, (kind, start) in CASES.items():
        model = workbench.load(args.models / name)
        prompts = load_file(str(args.models / name / "prompts.safetensors"))
        with torch.no_grad():
            reference = model(prompts["clean"])
        distance = OutputDistance(reference, kind, start=start)
        patch = Replacement.of("patch", source=prompts["corrupt"])
        graph = build_graph(model.config)

        def run(model=model, distance=distance, patch=patch, prompts=prompts):
            problem = Problem(model, prompts["clean"], patch, distance)
            return acdc(problem, threshold=args.threshold)

        ours_s, circuit = timed(run, args.repeats)
        row = {
            "case": f"acdc: {name}",
            "edges": len(graph.edges),
            "threshold": args.threshold,
            "ours_s": round(ours_s, 4),
            "ours_kept": len(circuit.edges),
        }
        if name in peers:
            peer = peers[name]
            same = set(peer["kept"]) == set(circuit.edges)
            row |= {
                "peer": peer["peer"],
                "peer_s": round(peer["peer_s"], 4),
                "peer_kept": len(peer["kept"]),
                "same_circuit": same,
                "speedup": round(peer["peer_s"] / ours_s, 2),
            }
        rows.append(row)
    return rows


def attribution_case(args) -> list[dict]:
    import transformers as T

    from workbench.convert import from_hf

    torch.manual_seed(0)
    cfg = T.GPT2Config()
    model = from_hf(T.GPT2LMHeadModel(cfg).eval())
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 50257, (8, 16), generator=gen)
    corrupt = torch.randint(0, 50257, (8, 16), generator=gen)
    metric = LogitDiff(
        torch.randint(0, 50257, (8,), generator=gen), torch.zeros(8, dtype=torch.long)
    )
    patch = Replacement.of("patch", source=corrupt)
    graph = build_graph(model.config)
    problem = Problem(model, clean, patch, metric, graph=graph)

    def forward():
        with torch.no_grad():
            return model(clean)

    forward()
    forward_s, _ = timed(forward, args.repeats)
    peer = {}
    if args.peers:
        peer = {r["program"]: r for r in json.loads(Path(args.peers).read_text())}.get("eap", {})
    rows = []
    for label, fn, goal in (
        ("eap", lambda: eap(problem), "4-5 (x1.3)"),
        ("eap-ig, m=5", lambda: eap_ig(problem, steps=5), "17 (x1.3)"),
    ):
        fn()
        seconds, circuit = timed(fn, args.repeats)
        row = {
            "case": label,
            "forward_s": round(forward_s, 4),
            "ours_s": round(seconds, 4),
            "forward_equivalents": round(seconds / forward_s, 2),
            "goal": goal,
        }
        if label == "eap" and peer:
            theirs = peer["scores"]
            err = max(abs(circuit.scores[e] - theirs[e]) for e in circuit.scores)
            scale = max(circuit.scores.values())
            if err > 1e-3 * scale:
                raise SystemExit(f"EAP scores differ from auto-circuit's by {err:.2e}")
            row |= {
                "peer": peer["peer"],
                "peer_s": round(peer["peer_s"], 4),
                "max_abs_diff": float(f"{err:.1e}"),
                "speedup": round(peer["peer_s"] / seconds, 2),
            }
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-models", type=Path, help="compile the programs here; exit")
    parser.add_argument("--models", type=Path, help="the directory --write-models filled")
    parser.add_argument("--peers", help="JSON written by benchmarks/discovery_peers.py")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="acdc,attribution")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.write_models:
        write_models(args.write_models, args.prompts)
        return
    info = {"threads": args.threads, "torch": torch.__version__}
    if "acdc" in args.cases:
        if args.models is None:
            parser.error("case acdc needs --models (written by --write-models)")
        for row in acdc_case(args):
            print(json.dumps({**row, **info}), flush=True)
    if "attribution" in args.cases:
        for row in attribution_case(args):
            print(json.dumps({**row, **info}), flush=True)


if __name__ == "__main__":
    main()
